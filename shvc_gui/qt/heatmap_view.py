"""An image and its heatmap of where the bits go side by side, with zoom and pan kept in sync.

The heatmap is in bits per dimension (bpd, the unit of every other figure in the application: the
model's bits for a pixel divided by its three coded channels) on one fixed scale, 0 to
:data:`SCALE_BPD` (8 bpd = an uncompressed 8-bit sample), so two images' maps compare at a glance.
Transparent pixels of the image are drawn over a checkerboard.

Both panes are :class:`ZoomView` s of the same size showing pixmaps of the same size, so keeping
them aligned is a matter of giving them the same transform and the same scroll bar values. Each
change on one side (wheel, drag, buttons, scroll bars) is copied to the other side; a flag keeps
the copy from echoing back.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QImage, QKeySequence, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel,
                               QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from ..core.heatmap import LUT, colorize, scale_ticks
from .imaging import to_qimage

MIN_ZOOM, MAX_ZOOM, STEP = 1 / 64, 64.0, 1.25
NO_HEATMAP = "No heatmap: this image was not coded by the model."
SCALE_BPD = 8.0           # the heatmap's fixed scale: 0 .. 8 bits per dimension (8 = uncompressed)
CODED_CHANNELS = 3        # the model codes R, G and B; a bits map sums them per pixel
CHECK = 8                 # checkerboard squares, in screen pixels


def _checkerboard() -> QPixmap:
    pm = QPixmap(2 * CHECK, 2 * CHECK)
    pm.fill(QColor(204, 204, 204))
    p = QPainter(pm)
    p.fillRect(0, 0, CHECK, CHECK, QColor(153, 153, 153))
    p.fillRect(CHECK, CHECK, CHECK, CHECK, QColor(153, 153, 153))
    p.end()
    return pm


class ZoomView(QGraphicsView):
    """A view of one pixmap. The wheel zooms around the cursor, dragging pans; pixels stay sharp
    from 1:1 up and are smoothed when the image is shrunk."""
    zoomed = Signal()                 # the user zoomed with the wheel
    hovered = Signal(QPointF)         # the scene (image) position under the mouse
    left_view = Signal()              # the mouse left the view
    resized = Signal()                # the viewport changed size

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.NoAnchor)      # set_zoom keeps its own anchor
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setMouseTracking(True)
        self.setBackgroundBrush(self.palette().window())
        self._checks = QBrush(_checkerboard())
        self._apply_zoom(1.0)

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        """The window colour around the image and a checkerboard under it (seen through
        transparent pixels), its squares a constant size on screen."""
        super().drawBackground(painter, rect)
        image = self.sceneRect().intersected(rect)
        if self.item.pixmap().isNull() or image.isEmpty():
            return
        z = self.zoom()
        self._checks.setTransform(QTransform.fromScale(1 / z, 1 / z))
        painter.fillRect(image, self._checks)

    def set_pixmap(self, pm: QPixmap) -> None:
        self.item.setPixmap(pm)
        self.scene().setSceneRect(QRectF(pm.rect()))

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float, anchor: QPoint | None = None) -> None:
        """Zoom to ``z`` keeping the image point under ``anchor`` (viewport coordinates; default
        the centre) where it is."""
        if anchor is None:
            anchor = self.viewport().rect().center()
        fixed = self.mapToScene(anchor)
        self._apply_zoom(z)
        moved = self.mapFromScene(fixed) - anchor
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())

    def _apply_zoom(self, z: float) -> None:
        z = min(MAX_ZOOM, max(MIN_ZOOM, float(z)))
        smooth = z < 1.0                      # nearest neighbour from 1:1 up, smooth when shrinking
        self.setRenderHint(QPainter.SmoothPixmapTransform, smooth)
        self.item.setTransformationMode(Qt.SmoothTransformation if smooth else Qt.FastTransformation)
        self.setTransform(QTransform.fromScale(z, z))

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom() * STEP ** steps, event.position().toPoint())
            self.zoomed.emit()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        self.hovered.emit(self.mapToScene(event.position().toPoint()))

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.left_view.emit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()


class ColourBar(QWidget):
    """The heatmap's legend: the colour ramp with ticks in bits per dimension."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.vmax = 0.0
        ramp = np.ascontiguousarray(LUT[None, :, :])
        self._ramp = QImage(ramp.data, 256, 1, 3 * 256, QImage.Format_RGB888).copy()
        fm = self.fontMetrics()
        self.setFixedHeight(2 * fm.height() + 6)
        self.setMinimumWidth(200)

    def sizeHint(self) -> QSize:
        return QSize(320, self.height())

    def set_vmax(self, vmax: float) -> None:
        self.vmax = float(vmax)
        self.setToolTip(f"Bits per dimension the model spends on a pixel (its three channels averaged), on "
                        f"the same scale for every image: 0 to {self.vmax:g} bpd, where {self.vmax:g} is "
                        f"an uncompressed sample; the brightest colour means {self.vmax:g} bpd or more")
        self.update()

    def paintEvent(self, event) -> None:
        if self.vmax <= 0:
            return
        p = QPainter(self)
        fm = p.fontMetrics()
        caption = "bpd (fixed scale)"
        x0 = 4 + fm.horizontalAdvance("0") / 2
        w = max(40.0, self.width() - x0 - 12 - fm.horizontalAdvance(caption))
        ramp_h = fm.height() - 2
        p.setRenderHint(QPainter.SmoothPixmapTransform, True)
        p.drawImage(QRectF(x0, 1, w, ramp_h), self._ramp)
        p.setPen(self.palette().color(self.foregroundRole()))
        p.drawText(QPointF(x0 + w + 8, 1 + fm.ascent()), caption)
        for t in scale_ticks(self.vmax):
            x = x0 + w * t / self.vmax
            p.drawLine(QPointF(x, ramp_h + 1), QPointF(x, ramp_h + 4))
            label = f"{t:g}" + ("+" if t == self.vmax else "")
            p.drawText(QPointF(x - fm.horizontalAdvance(label) / 2, ramp_h + 4 + fm.ascent()), label)


class SyncedImageViews(QWidget):
    """The image (left) and its heatmap of bits per dimension (right), zoomed and scrolled together.

    ``set_images(rgb, bits_map)``, ``clear()``, ``zoom()``, ``set_zoom(z)``, ``fit()``;
    ``hovered(x, y, bpd)`` as the mouse moves over a pixel of either view (NaN without a heatmap). After ``fit()`` (and after ``set_images``) the image keeps fitting as the widget is
    resized, until the user zooms.
    """
    hovered = Signal(int, int, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bits: np.ndarray | None = None
        self._syncing = False
        self._fitting = True

        self.left, self.right = ZoomView(), ZoomView()
        self.message = QLabel(NO_HEATMAP)
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.right_stack = QStackedWidget()
        self.right_stack.addWidget(self.right)
        self.right_stack.addWidget(self.message)
        self.split = QSplitter(Qt.Horizontal)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(self.left)
        self.split.addWidget(self.right_stack)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([1000, 1000])           # equal halves, so the same pixels line up

        toolbar = QHBoxLayout()
        toolbar.setContentsMargins(0, 0, 0, 0)
        self.button_fit = self._button(toolbar, "Fit", "Show the whole image (F)", "F", self.fit)
        self.button_1_1 = self._button(toolbar, "1:1", "One image pixel per screen pixel (1)", "1",
                                       lambda: self.set_zoom(1.0))
        self.button_zoom_in = self._button(toolbar, "Zoom in", "Zoom in (+, or the mouse wheel)",
                                           QKeySequence.ZoomIn, lambda: self.set_zoom(self.zoom() * STEP))
        self.button_zoom_out = self._button(toolbar, "Zoom out", "Zoom out (-, or the mouse wheel)",
                                            QKeySequence.ZoomOut, lambda: self.set_zoom(self.zoom() / STEP))
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(self.zoom_label.fontMetrics().horizontalAdvance("6400 %") + 8)
        self.pixel_label = QLabel()
        self.pixel_label.setToolTip("The pixel under the mouse and the bits per dimension the model spends on it")
        self.legend = ColourBar()
        policy = self.legend.sizePolicy()
        policy.setRetainSizeWhenHidden(True)          # the views do not jump when the legend goes
        self.legend.setSizePolicy(policy)
        toolbar.addWidget(self.zoom_label)
        toolbar.addWidget(self.pixel_label, 1)
        toolbar.addWidget(self.legend, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(toolbar)
        layout.addWidget(self.split, 1)

        for view in (self.left, self.right):
            view.zoomed.connect(lambda src=view: self._user_zoomed(src))
            view.horizontalScrollBar().valueChanged.connect(lambda _, src=view: self._sync_from(src))
            view.verticalScrollBar().valueChanged.connect(lambda _, src=view: self._sync_from(src))
            view.resized.connect(self._on_resized)
            view.hovered.connect(self._on_hover)
            view.left_view.connect(self.pixel_label.clear)
        self.clear()

    def _button(self, row: QHBoxLayout, text: str, tip: str, key, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.NoFocus)
        button.clicked.connect(slot)
        row.addWidget(button)
        action = QAction(text, self)                 # the key works while focus is in this widget
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return button

    # -- content ----------------------------------------------------------------------------------
    def set_images(self, rgb: np.ndarray, bits_map: np.ndarray | None) -> None:
        """Show ``rgb`` ((H, W), (H, W, 3) or (H, W, 4) uint8) and the heatmap of ``bits_map``
        ((H, W) bits per pixel, the coded channels summed, as the codec reports it; or None for a
        message instead of a heatmap), fitted to the view. ``self.bits`` holds it in bpd."""
        rgb = np.asarray(rgb)
        bits = None if bits_map is None else np.asarray(bits_map, dtype=np.float32) / CODED_CHANNELS
        if bits is not None and bits.shape != rgb.shape[:2]:
            raise ValueError(f"bits map of shape {bits.shape} for an image of shape {rgb.shape}")
        self.left.set_pixmap(QPixmap.fromImage(to_qimage(rgb)))
        self.bits = bits
        if bits is None:
            self.right.set_pixmap(QPixmap())
            self.right_stack.setCurrentWidget(self.message)
            self.legend.hide()
        else:
            self.right.set_pixmap(QPixmap.fromImage(to_qimage(colorize(bits, SCALE_BPD))))
            self.right_stack.setCurrentWidget(self.right)
            self.legend.set_vmax(SCALE_BPD)
            self.legend.setVisible(self.right_stack.isVisibleTo(self))
        self.pixel_label.clear()
        self.fit()

    def clear(self) -> None:
        self.bits = None
        self.left.set_pixmap(QPixmap())
        self.right.set_pixmap(QPixmap())
        self.right_stack.setCurrentWidget(self.right)
        self.legend.hide()
        self.pixel_label.clear()
        self.left.set_zoom(1.0)
        self._sync_from(self.left)
        self._fitting = True

    def show_heatmap(self, show: bool) -> None:
        """Show or hide the heatmap pane (a decoded .shvc file has no bits map to show)."""
        self.right_stack.setVisible(show)
        self.legend.setVisible(show and self.bits is not None)

    # -- zoom -------------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.left.zoom()

    def set_zoom(self, z: float) -> None:
        """Zoom both views to ``z`` (1.0 = one image pixel per screen pixel) around their centre."""
        self._fitting = False
        self.left.set_zoom(z)
        self._sync_from(self.left)

    def fit(self) -> None:
        """Zoom so that the whole image shows, centred; small images are enlarged to fill the view
        (their pixels stay sharp), which is what looking at a heatmap needs."""
        rect = self.left.scene().sceneRect()
        room = self.left.maximumViewportSize()        # without scroll bars, which a fitted image needs none of
        if rect.isEmpty() or room.width() < 8 or room.height() < 8:
            return
        z = min((room.width() - 4) / rect.width(), (room.height() - 4) / rect.height())
        self.left.set_zoom(z)
        self.left.centerOn(rect.center())
        self._sync_from(self.left)
        self._fitting = True

    def _user_zoomed(self, src: ZoomView) -> None:
        self._fitting = False
        self._sync_from(src)

    def _on_resized(self) -> None:
        if self._fitting:
            self.fit()
        else:
            self._sync_from(self.left)

    def _sync_from(self, src: ZoomView) -> None:
        """Give the other view ``src``'s zoom and scroll position."""
        if self._syncing:
            return
        self._syncing = True
        try:
            dst = self.right if src is self.left else self.left
            if not math.isclose(dst.zoom(), src.zoom(), rel_tol=1e-12):
                dst.set_zoom(src.zoom())
            if dst.viewport().size() == src.viewport().size():      # the usual case: pixel for pixel
                dst.horizontalScrollBar().setValue(src.horizontalScrollBar().value())
                dst.verticalScrollBar().setValue(src.verticalScrollBar().value())
            else:                                                    # e.g. the splitter was dragged
                dst.centerOn(src.mapToScene(src.viewport().rect().center()))
        finally:
            self._syncing = False
        self.zoom_label.setText(f"{100 * self.zoom():.0f} %")

    # -- hover ------------------------------------------------------------------------------------
    def _on_hover(self, pos: QPointF) -> None:
        x, y = math.floor(pos.x()), math.floor(pos.y())
        rect = self.left.scene().sceneRect()
        if not (0 <= x < rect.width() and 0 <= y < rect.height()):
            self.pixel_label.clear()
            return
        bits = float(self.bits[y, x]) if self.bits is not None else math.nan
        self.pixel_label.setText(f"x {x}, y {y}" + ("" if math.isnan(bits) else f": {bits:.2f} bpd"))
        self.hovered.emit(x, y, bits)

    def map_to_view(self, x: float, y: float, right: bool = False) -> QPointF:
        """The viewport position of image point (x, y) in the left (or right) view."""
        view = self.right if right else self.left
        return QPointF(view.mapFromScene(QPointF(x, y)))
