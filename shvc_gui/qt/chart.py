"""A grouped horizontal bar chart of bits per dimension per codec, drawn with QPainter."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

CODECS = ("shvc", "png", "webp", "jxl", "flif")
NAMES = {"shvc": "SHVC", "png": "PNG", "webp": "WebP", "jxl": "JPEG-XL", "flif": "FLIF"}
COLOURS = {"shvc": QColor(46, 139, 87), "png": QColor(120, 130, 150), "webp": QColor(70, 130, 200),
           "jxl": QColor(230, 150, 40), "flif": QColor(170, 90, 180)}
BAR_H, BAR_GAP, GROUP_GAP, LEGEND_H, AXIS_H, MARGIN = 16, 3, 14, 26, 34, 10


class BpdChart(QWidget):
    """``set_groups([(label, {codec: bpd or None}), ...])``: one group of bars per image (and one
    for the whole batch); the lowest BPD of each group is drawn bold with an outline."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.groups: list[tuple[str, dict[str, float | None]]] = []
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.setMinimumHeight(120)

    def set_groups(self, groups) -> None:
        self.groups = [(str(label), dict(values)) for label, values in groups]
        self.updateGeometry()
        self.setMinimumHeight(self.sizeHint().height())
        self.update()

    def clear(self) -> None:
        self.set_groups([])

    def _codecs(self, values: dict) -> list[str]:
        return [c for c in CODECS if c in values]

    def _group_height(self, values: dict) -> int:
        n = len(self._codecs(values))
        return n * BAR_H + max(0, n - 1) * BAR_GAP

    def sizeHint(self) -> QSize:
        h = 2 * MARGIN + LEGEND_H + AXIS_H + sum(self._group_height(v) + GROUP_GAP for _, v in self.groups)
        return QSize(600, max(160, h))

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.Base))
        text = pal.color(QPalette.Text)
        fm = QFontMetrics(self.font())
        if not self.groups:
            p.setPen(pal.color(QPalette.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignCenter, "Compress images to compare codecs")
            return
        label_w = min(220, max(fm.horizontalAdvance(lbl) for lbl, _ in self.groups) + 12)
        value_w = fm.horizontalAdvance("88.888") + 8
        left = MARGIN + label_w
        plot_w = max(40, self.width() - left - MARGIN - value_w)
        vmax = max([v for _, vals in self.groups for v in vals.values() if v is not None] + [1.0])
        vmax = _nice_ceiling(vmax)
        scale = plot_w / vmax

        self._legend(p, fm, text)
        top = MARGIN + LEGEND_H
        bottom = top + sum(self._group_height(v) + GROUP_GAP for _, v in self.groups)
        self._axis(p, fm, left, top, bottom, plot_w, vmax, pal)

        bold = QFont(self.font())
        bold.setBold(True)
        y = top + GROUP_GAP // 2
        for label, values in self.groups:
            gh = self._group_height(values)
            p.setPen(text)
            p.setFont(self.font())
            elided = fm.elidedText(label, Qt.ElideMiddle, label_w - 10)
            p.drawText(QRectF(MARGIN, y, label_w - 10, gh), Qt.AlignRight | Qt.AlignVCenter, elided)
            known = {c: v for c, v in values.items() if v is not None}
            best = min(known, key=known.get) if known else None
            for c in self._codecs(values):
                v = values[c]
                rect = QRectF(left, y, 0, BAR_H)
                if v is None:
                    p.setPen(pal.color(QPalette.PlaceholderText))
                    p.setFont(self.font())
                    p.drawText(QRectF(left + 4, y, plot_w, BAR_H), Qt.AlignLeft | Qt.AlignVCenter,
                               f"{NAMES[c]}: not available")
                else:
                    rect.setWidth(max(1.0, v * scale))
                    p.fillRect(rect, COLOURS[c])
                    if c == best:
                        p.setPen(QPen(text, 1.5))
                        p.drawRect(rect)
                    p.setPen(text)
                    p.setFont(bold if c == best else self.font())
                    p.drawText(QRectF(rect.right() + 4, y, value_w + 40, BAR_H), Qt.AlignLeft | Qt.AlignVCenter,
                               f"{v:.3f}")
                y += BAR_H + BAR_GAP
            y += GROUP_GAP - BAR_GAP

    def _legend(self, p: QPainter, fm: QFontMetrics, text: QColor) -> None:
        x = MARGIN
        p.setFont(self.font())
        for c in CODECS:
            p.fillRect(QRectF(x, MARGIN + 4, 12, 12), COLOURS[c])
            p.setPen(text)
            p.drawText(int(x + 16), MARGIN + 4 + fm.ascent() - 1, NAMES[c])
            x += 16 + fm.horizontalAdvance(NAMES[c]) + 18
        p.drawText(int(x + 10), MARGIN + 4 + fm.ascent() - 1, "lower is better")

    def _axis(self, p: QPainter, fm: QFontMetrics, left: float, top: float, bottom: float, plot_w: float,
              vmax: float, pal: QPalette) -> None:
        grid = QColor(pal.color(QPalette.Text))
        grid.setAlpha(40)
        step = _nice_step(vmax)
        v = 0.0
        while v <= vmax + 1e-9:
            x = left + v * plot_w / vmax
            p.setPen(grid)
            p.drawLine(int(x), int(top), int(x), int(bottom))
            p.setPen(pal.color(QPalette.Text))
            lbl = f"{v:g}"
            p.drawText(int(x - fm.horizontalAdvance(lbl) / 2), int(bottom + fm.ascent() + 2), lbl)
            v += step
        cap = "bits per dimension"
        p.drawText(int(left + plot_w / 2 - fm.horizontalAdvance(cap) / 2), int(bottom + 2 * fm.height() + 2), cap)


def _nice_step(vmax: float) -> float:
    for s in (0.5, 1, 2, 5, 10):
        if vmax / s <= 8:
            return s
    return 20.0


def _nice_ceiling(v: float) -> float:
    s = _nice_step(v)
    return s * int(-(-v // s))
