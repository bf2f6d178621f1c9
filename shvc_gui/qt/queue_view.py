"""The queue table and, under it, its total row kept in sight (a one-row footer table with the same
columns), so the totals never scroll away however many images are queued.

Both tables show the same :class:`QueueModel` through filter proxies (images only / total only);
their column widths, hidden columns and horizontal scrolling are kept in step. The image column
takes the room that is left (long names are elided in the middle, keeping the extension); the
other columns are as wide as their contents need in the current font.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, QRect, QSize, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QStyle, QStyledItemDelegate, QTableView, QVBoxLayout,
                               QWidget)

from .queue_model import (COL_CHANGE, COL_CODEC, COL_IMAGE, COL_ORIGINAL, COL_OVERHEAD, COL_SHVC, COL_STATUS,
                          COL_BPD, HEADERS, ProgressRole, QueueModel)

ROW_H, FOOTER_H, BAR_H = 56, 30, 4
IMAGE_MIN_W = 140
HYSTERESIS = 24
# The widest usual value of each column (bold: the total row and the best codec are bold).
SAMPLES = {COL_ORIGINAL: "888.8 KB", COL_STATUS: "Compressing 88 %", COL_SHVC: "888.8 KB",
           COL_CHANGE: "grew by 88.8 %", COL_BPD: "8.888", COL_OVERHEAD: "88888 b",
           **{col: "8.888" for col in COL_CODEC.values()}}
BOLD = {COL_ORIGINAL, COL_SHVC, COL_CHANGE, COL_BPD, *COL_CODEC.values()}


class ProgressDelegate(QStyledItemDelegate):
    """The status cell: its text as usual and, while the image is being coded, a thin progress bar
    along the bottom of the cell (below the text, never across it)."""

    def paint(self, painter, option, index):
        super().paint(painter, option, index)
        fraction = index.data(ProgressRole)
        if fraction is None:
            return
        r = option.rect.adjusted(6, 0, -6, -6)
        track = QRect(r.left(), r.bottom() - BAR_H + 1, r.width(), BAR_H)
        pal = option.palette
        base = QColor(pal.color(QPalette.Text))
        base.setAlpha(40)
        painter.save()
        painter.fillRect(track, base)
        done = QRect(track)
        done.setWidth(round(track.width() * max(0.0, min(1.0, fraction))))
        selected = bool(option.state & QStyle.State_Selected)
        painter.fillRect(done, pal.color(QPalette.HighlightedText if selected else QPalette.Highlight))
        painter.restore()


class _Rows(QSortFilterProxyModel):
    """The images, without the total row."""

    def filterAcceptsRow(self, row, parent):
        return not self.sourceModel().is_total(row)


class _Total(QSortFilterProxyModel):
    def filterAcceptsRow(self, row, parent):
        return self.sourceModel().is_total(row)


class QueueView(QWidget):
    """``table`` (the images; selection and keys), ``footer`` (the total row). Rows are always given
    as rows of the source model."""

    def __init__(self, model: QueueModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.rows, self.total = _Rows(self), _Total(self)
        self.rows.setSourceModel(model)
        self.total.setSourceModel(model)

        self.table = QTableView()
        self.table.setModel(self.rows)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setItemDelegateForColumn(COL_STATUS, ProgressDelegate(self.table))
        self.table.setIconSize(QSize(48, 48))
        self.table.verticalHeader().setDefaultSectionSize(ROW_H)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)

        self.footer = QTableView()
        self.footer.setModel(self.total)
        self.footer.horizontalHeader().hide()
        self.footer.verticalHeader().hide()
        self.footer.verticalHeader().setDefaultSectionSize(FOOTER_H - 2)
        self.footer.setFixedHeight(FOOTER_H)
        self.footer.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.footer.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.footer.setSelectionMode(QAbstractItemView.NoSelection)
        self.footer.setFocusPolicy(Qt.NoFocus)
        self.footer.setTextElideMode(Qt.ElideRight)

        hh = self.table.horizontalHeader()
        hh.setMinimumSectionSize(40)
        hh.sectionResized.connect(lambda col, _, w: self.footer.setColumnWidth(col, w))
        self.table.horizontalScrollBar().valueChanged.connect(self.footer.horizontalScrollBar().setValue)
        self.table.viewport().installEventFilter(self)
        self._narrow: set[int] = set()            # columns hidden for want of room
        self._fits = True
        self._widths: dict[int, int] = {}
        self._refit = QTimer(self)                 # after the resize, once however many came
        self._refit.setSingleShot(True)
        self._refit.setInterval(0)
        self._refit.timeout.connect(self._fit_image_column)
        self.size_columns()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.footer)

    def size_columns(self) -> None:
        """Every column but the image's as wide as its header and widest sample value; the image
        column takes the rest (never less than IMAGE_MIN_W)."""
        fm = QFontMetrics(self.table.font())
        bold = QFont(self.table.font())
        bold.setBold(True)
        fb = QFontMetrics(bold)
        hh = self.table.horizontalHeader()
        for col in range(len(HEADERS)):
            if col == COL_IMAGE:
                continue
            sample = (fb if col in BOLD else fm).horizontalAdvance(SAMPLES.get(col, ""))
            w = max(fm.horizontalAdvance(HEADERS[col]), sample) + 14
            hh.setSectionResizeMode(col, QHeaderView.Fixed)
            self._widths[col] = w                 # a hidden column reports width 0: keep its own
            self.table.setColumnWidth(col, w)
            self.footer.setColumnWidth(col, w)
        hh.setSectionResizeMode(COL_IMAGE, QHeaderView.Fixed)
        self.footer.horizontalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self._fit_image_column()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.table.viewport() and event.type() == QEvent.Resize:
            self._refit.start()                    # the window, the splitter or a scroll bar moved
        return False

    def _fit_image_column(self) -> None:
        """The image column takes the room the other columns leave. Where that is less than
        IMAGE_MIN_W the initial-bits column gives way first (its figure stays in the BPD cell's
        tooltip), so the codec columns stay in sight; below that the table scrolls sideways.

        While the columns fit there is no horizontal scroll bar at all: one that came and went
        would change the height, hence the vertical scroll bar, hence the width, and round again.
        Decisions near a threshold keep their state within HYSTERESIS pixels for the same reason."""
        def others(without=()):
            return sum(self._widths[c] for c in range(len(HEADERS)) if c != COL_IMAGE
                       and c not in without and not (self.table.isColumnHidden(c) and c not in self._narrow))
        room = self.table.viewport().width()
        slack = HYSTERESIS if self._narrow else 0           # leaving narrow mode needs a margin
        narrow = {COL_OVERHEAD} if room - others() < IMAGE_MIN_W + slack else set()
        if narrow != self._narrow:
            for c in narrow | self._narrow:
                self.table.setColumnHidden(c, c in narrow)
                self.footer.setColumnHidden(c, c in narrow)
            self._narrow = narrow
        free = room - others(narrow)
        fits = free >= IMAGE_MIN_W + (HYSTERESIS if not self._fits else 0)
        self._fits = fits
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff if fits else Qt.ScrollBarAsNeeded)
        w = max(IMAGE_MIN_W, free) if fits else IMAGE_MIN_W
        if w != self.table.columnWidth(COL_IMAGE):
            self.table.setColumnWidth(COL_IMAGE, w)
        self.footer.setColumnWidth(COL_IMAGE, w)

    def set_column_hidden(self, col: int, hidden: bool) -> None:
        self.table.setColumnHidden(col, hidden)
        self.footer.setColumnHidden(col, hidden)
        self._fit_image_column()

    # -- rows of the source model -----------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        return sorted(self.rows.mapToSource(i).row() for i in self.table.selectionModel().selectedRows())

    def select_row(self, row: int) -> None:
        idx = self.rows.mapFromSource(self.model.index(row, COL_IMAGE))
        if idx.isValid():
            self.table.selectionModel().select(idx, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)

    def scroll_to_row(self, row: int) -> None:
        idx = self.rows.mapFromSource(self.model.index(row, COL_IMAGE))
        if idx.isValid():
            self.table.scrollTo(idx, QAbstractItemView.EnsureVisible)

    def is_row_visible(self, row: int) -> bool:
        idx = self.rows.mapFromSource(self.model.index(row, COL_IMAGE))
        rect = self.table.visualRect(idx)
        return idx.isValid() and self.table.viewport().rect().contains(rect.center())

    def source_row(self, proxy_index) -> int:
        return self.rows.mapToSource(proxy_index).row()
