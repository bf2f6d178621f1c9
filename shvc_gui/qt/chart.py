"""A grouped horizontal bar chart of bits per dimension per codec, drawn with QPainter.

One group of bars per image (and usually one more for the whole batch), one bar per codec in a
fixed order and colour. The lowest BPD of each group is drawn with a bold value and an outline; a
codec without a value (not installed, failed, not run yet) gets a grey "n/a" instead of a bar.
Colours of text, grid and background come from the widget palette, so light and dark themes work.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

CODECS = ("shvc", "png", "webp", "jxl", "flif")
NAMES = {"shvc": "SHVC", "png": "PNG", "webp": "WebP", "jxl": "JPEG-XL", "flif": "FLIF"}
COLOURS = {"shvc": QColor(46, 139, 87), "png": QColor(120, 130, 150), "webp": QColor(70, 130, 200),
           "jxl": QColor(230, 150, 40), "flif": QColor(170, 90, 180)}
OTHER_COLOUR = QColor(150, 150, 150)       # a codec key outside CODECS (drawn after the known ones)

EMPTY_HINT = "Compress images to compare codecs"
AXIS_CAPTION = "bits per dimension"
BAR_H, BAR_GAP, GROUP_GAP, MARGIN = 16, 3, 14, 10
MAX_LABEL_W = 240


class BpdChart(QWidget):
    """``set_groups([(label, {codec: bpd or None}), ...])`` and ``clear()``; lower is better."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.groups: list[tuple[str, dict[str, float | None]]] = []
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)

    # -- data -------------------------------------------------------------------------------------
    def set_groups(self, groups: list[tuple[str, dict[str, float | None]]]) -> None:
        self.groups = [(str(label), dict(values)) for label, values in groups]
        self.updateGeometry()          # the height follows the number of bars (for a QScrollArea)
        self.update()

    def clear(self) -> None:
        self.set_groups([])

    def codecs(self) -> list[str]:
        """The codecs that appear in any group, in display order."""
        present = {c for _, values in self.groups for c in values}
        return [c for c in CODECS if c in present] + sorted(present.difference(CODECS))

    # -- size -------------------------------------------------------------------------------------
    def _legend_h(self) -> int:
        """The legend's line and, under it, the axis' tick values (repeated at the top, which
        stays in sight when the chart scrolls)."""
        return 2 * QFontMetrics(self.font()).height() + 14

    def _axis_h(self) -> int:
        return 2 * QFontMetrics(self.font()).height() + 10

    def _group_h(self, values: dict) -> int:
        n = max(1, len(values))
        return n * BAR_H + (n - 1) * BAR_GAP

    def _content_h(self) -> int:
        if not self.groups:
            return 160
        bars = sum(self._group_h(v) + GROUP_GAP for _, v in self.groups)
        return 2 * MARGIN + self._legend_h() + bars + self._axis_h()

    def sizeHint(self) -> QSize:
        return QSize(640, self._content_h())

    def minimumSizeHint(self) -> QSize:
        return QSize(320, self._content_h())

    # -- drawing ----------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.Base))
        if not self.groups:
            p.setPen(pal.color(QPalette.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignCenter, EMPTY_HINT)
            return

        fm = QFontMetrics(self.font())
        bold = QFont(self.font())
        bold.setBold(True)
        text, muted = pal.color(QPalette.Text), pal.color(QPalette.PlaceholderText)

        widest = max(fm.horizontalAdvance(label) for label, _ in self.groups)
        label_w = min(widest, MAX_LABEL_W, self.width() // 3) + 12
        value_w = QFontMetrics(bold).horizontalAdvance("88.88") + 8
        left = MARGIN + label_w
        plot_w = max(40.0, self.width() - left - MARGIN - value_w)
        known = [v for _, values in self.groups for v in values.values() if v is not None]
        step = _nice_step(max(known, default=1.0))
        vmax = step * max(1, math.ceil(max(known, default=1.0) / step - 1e-9))
        scale = plot_w / vmax

        self._draw_legend(p, fm, text)
        top = MARGIN + self._legend_h()
        bottom = top + sum(self._group_h(v) + GROUP_GAP for _, v in self.groups)
        self._draw_axis(p, fm, left, top, bottom, plot_w, vmax, step, text)

        y = top + GROUP_GAP / 2
        for label, values in self.groups:
            gh = self._group_h(values)
            p.setFont(self.font())
            p.setPen(text)
            p.drawText(QRectF(MARGIN, y, label_w - 10, gh), Qt.AlignRight | Qt.AlignVCenter,
                       fm.elidedText(label, Qt.ElideMiddle, label_w - 10))
            present = [v for v in values.values() if v is not None]
            best = min(present) if present else None
            for c in [c for c in self.codecs() if c in values]:
                v = values[c]
                if v is None:
                    p.setFont(self.font())
                    p.setPen(muted)
                    p.drawText(QRectF(left + 4, y, plot_w, BAR_H), Qt.AlignLeft | Qt.AlignVCenter,
                               f"{NAMES.get(c, c)}: n/a")
                else:
                    is_best = v <= best + 1e-9
                    bar = QRectF(left, y, max(1.0, v * scale), BAR_H)
                    p.fillRect(bar, COLOURS.get(c, OTHER_COLOUR))
                    if is_best:
                        p.setPen(QPen(text, 1.5))
                        p.drawRect(bar.adjusted(0.75, 0.75, -0.75, -0.75))
                    p.setFont(bold if is_best else self.font())
                    p.setPen(text)
                    p.drawText(QRectF(bar.right() + 4, y, value_w + 20, BAR_H), Qt.AlignLeft | Qt.AlignVCenter,
                               f"{v:.2f}")
                y += BAR_H + BAR_GAP
            y += GROUP_GAP - BAR_GAP

    def _draw_legend(self, p: QPainter, fm: QFontMetrics, text: QColor) -> None:
        x, y = MARGIN, MARGIN + 4
        box = fm.ascent() - 1
        p.setFont(self.font())
        p.setPen(text)
        for c in self.codecs():
            name = NAMES.get(c, c)
            p.fillRect(QRectF(x, y + 1, box, box), COLOURS.get(c, OTHER_COLOUR))
            p.drawText(QPointF(x + box + 4, y + fm.ascent()), name)
            x += box + 4 + fm.horizontalAdvance(name) + 16
        p.setPen(self.palette().color(QPalette.PlaceholderText))
        p.drawText(QPointF(x + 8, y + fm.ascent()), "lower is better (best in bold)")

    def _draw_axis(self, p: QPainter, fm: QFontMetrics, left: float, top: float, bottom: float,
                   plot_w: float, vmax: float, step: float, text: QColor) -> None:
        grid = QColor(text)
        grid.setAlpha(45)
        p.setFont(self.font())
        for i in range(int(round(vmax / step)) + 1):
            v = i * step
            x = left + v * plot_w / vmax
            p.setPen(grid)
            p.drawLine(QPointF(x, top), QPointF(x, bottom))
            p.setPen(text)
            tick = f"{v:g}"
            p.drawText(QPointF(x - fm.horizontalAdvance(tick) / 2, bottom + 4 + fm.ascent()), tick)
            p.drawText(QPointF(x - fm.horizontalAdvance(tick) / 2, top - 4 - fm.descent()), tick)
        p.drawText(QPointF(left + plot_w / 2 - fm.horizontalAdvance(AXIS_CAPTION) / 2,
                           bottom + 6 + fm.height() + fm.ascent()), AXIS_CAPTION)


def _nice_step(vmax: float) -> float:
    """A round grid step giving at most 8 intervals up to ``vmax``."""
    mag = 10 ** math.floor(math.log10(max(vmax, 1e-9) / 8))
    return next(m * mag for m in (1, 2, 5, 10) if vmax / (m * mag) <= 8)
