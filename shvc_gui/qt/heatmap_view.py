"""An image and its heatmap of bits per pixel side by side, with zoom and pan kept in sync."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHBoxLayout, QLabel,
                               QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from ..core.heatmap import LUT, colorize, default_vmax, scale_ticks
from .imaging import to_qimage

MIN_ZOOM, MAX_ZOOM, STEP = 1 / 64, 64.0, 1.25


class ZoomView(QGraphicsView):
    """A view of one pixmap; wheel zooms around the cursor, dragging pans."""
    zoomed = Signal(float)
    hovered = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.FastTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setMouseTracking(True)
        self.setBackgroundBrush(self.palette().window())

    def set_pixmap(self, pm: QPixmap) -> None:
        self.item.setPixmap(pm)
        self.scene().setSceneRect(QRectF(pm.rect()))

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float) -> None:
        z = min(MAX_ZOOM, max(MIN_ZOOM, z))
        self.resetTransform()
        self.scale(z, z)
        # nearest-neighbour from 1:1 up, smooth when shrinking
        smooth = z < 1.0
        self.setRenderHint(QPainter.SmoothPixmapTransform, smooth)
        self.item.setTransformationMode(Qt.SmoothTransformation if smooth else Qt.FastTransformation)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom() * STEP ** steps)
            self.zoomed.emit(self.zoom())
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        pt = self.mapToScene(event.position().toPoint())
        self.hovered.emit(int(np.floor(pt.x())), int(np.floor(pt.y())))


class ColourBar(QWidget):
    """The heatmap's legend: the colour ramp with ticks in bits per pixel."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.vmax = 0.0
        self.setFixedHeight(34)

    def set_vmax(self, vmax: float) -> None:
        self.vmax = vmax
        self.update()

    def paintEvent(self, event) -> None:
        if self.vmax <= 0:
            return
        p = QPainter(self)
        fm = p.fontMetrics()
        w = self.width() - 20 - fm.horizontalAdvance("  bits/pixel")
        grad = QLinearGradient(10, 0, 10 + w, 0)
        for i in range(0, 256, 16):
            grad.setColorAt(i / 255, QColor(*map(int, LUT[i])))
        grad.setColorAt(1.0, QColor(*map(int, LUT[255])))
        p.fillRect(QRectF(10, 2, w, 12), grad)
        p.setPen(self.palette().color(self.foregroundRole()))
        for t in scale_ticks(self.vmax):
            x = 10 + w * t / self.vmax
            p.drawLine(int(x), 14, int(x), 18)
            lbl = f"{t:g}"
            p.drawText(int(x - fm.horizontalAdvance(lbl) / 2), 18 + fm.ascent(), lbl)
        p.drawText(int(14 + w), 2 + fm.ascent(), " bits/pixel")
        self.setToolTip(f"Bits per pixel (all channels); the brightest colour means {self.vmax:.1f} or more")


class SyncedImageViews(QWidget):
    """``set_images(rgb, bits_map)``; ``hovered(x, y, bits)`` as the mouse moves over either view
    (bits is NaN without a heatmap)."""
    hovered = Signal(int, int, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bits: np.ndarray | None = None
        self.left, self.right = ZoomView(), ZoomView()
        self.message = QLabel("No heatmap: this image was not coded by the model.")
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setWordWrap(True)
        self.right_stack = QStackedWidget()
        self.right_stack.addWidget(self.right)
        self.right_stack.addWidget(self.message)
        self.legend = ColourBar()
        self.legend.setMinimumWidth(260)
        self.split = QSplitter()
        self.split.addWidget(self.left)
        self.split.addWidget(self.right_stack)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([1000, 1000])         # equal halves: the same pixels line up

        self.zoom_label = QLabel()
        buttons = QHBoxLayout()
        for text, slot, tip in (("Fit", self.fit, "Show the whole image"),
                                ("1:1", lambda: self.set_zoom(1.0), "One image pixel per screen pixel"),
                                ("Zoom in", lambda: self.set_zoom(self.zoom() * STEP), ""),
                                ("Zoom out", lambda: self.set_zoom(self.zoom() / STEP), "")):
            b = QPushButton(text)
            b.setToolTip(tip or text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            setattr(self, "button_" + text.lower().replace(" ", "_").replace(":", "_"), b)
        buttons.addWidget(self.zoom_label)
        buttons.addStretch(1)
        buttons.addWidget(self.legend, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.split, 1)

        self._syncing = False
        for a, b in ((self.left, self.right), (self.right, self.left)):
            a.zoomed.connect(lambda z, src=a: self._sync_from(src))
            a.horizontalScrollBar().valueChanged.connect(lambda _, src=a: self._sync_from(src))
            a.verticalScrollBar().valueChanged.connect(lambda _, src=a: self._sync_from(src))
            a.hovered.connect(self._on_hover)
        self._update_label()

    # -- content ----------------------------------------------------------------------------------
    def set_images(self, rgb: np.ndarray, bits_map: np.ndarray | None) -> None:
        self.left.set_pixmap(QPixmap.fromImage(to_qimage(rgb)))
        self.bits = None if bits_map is None else np.asarray(bits_map, dtype=np.float32)
        if self.bits is not None:
            vmax = default_vmax(self.bits)
            self.right.set_pixmap(QPixmap.fromImage(to_qimage(colorize(self.bits, vmax))))
            self.legend.set_vmax(vmax)
            self.right_stack.setCurrentWidget(self.right)
            self.legend.show()
        else:
            self.right.set_pixmap(QPixmap())
            self.right_stack.setCurrentWidget(self.message)
            self.legend.hide()
        self.fit()

    def clear(self) -> None:
        self.left.set_pixmap(QPixmap())
        self.right.set_pixmap(QPixmap())
        self.bits = None
        self.legend.hide()

    def show_heatmap(self, show: bool) -> None:
        """Hide the heatmap pane (e.g. for a decoded file, which has no bits map)."""
        self.right_stack.setVisible(show)
        self.legend.setVisible(show and self.bits is not None)

    # -- zoom -------------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.left.zoom()

    def set_zoom(self, z: float) -> None:
        self.left.set_zoom(z)
        self._sync_from(self.left)

    def fit(self) -> None:
        rect = self.left.scene().sceneRect()
        vp = self.left.viewport().size()
        if rect.isEmpty() or vp.width() < 2 or vp.height() < 2:
            self.set_zoom(1.0)
            return
        self.set_zoom(min(vp.width() / rect.width(), vp.height() / rect.height(), MAX_ZOOM) * 0.98)
        self.left.centerOn(rect.center())
        self._sync_from(self.left)

    def _sync_from(self, src: ZoomView) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            dst = self.right if src is self.left else self.left
            if abs(dst.zoom() - src.zoom()) > 1e-9:
                dst.set_zoom(src.zoom())
            if dst.viewport().size() == src.viewport().size():      # the usual case: pixel for pixel
                dst.horizontalScrollBar().setValue(src.horizontalScrollBar().value())
                dst.verticalScrollBar().setValue(src.verticalScrollBar().value())
            else:
                dst.centerOn(src.mapToScene(src.viewport().rect().center()))
        finally:
            self._syncing = False
        self._update_label()

    def _update_label(self) -> None:
        self.zoom_label.setText(f"{100 * self.zoom():.0f} %")

    def _on_hover(self, x: int, y: int) -> None:
        rect = self.left.scene().sceneRect()
        if not (0 <= x < rect.width() and 0 <= y < rect.height()):
            return
        bits = float(self.bits[y, x]) if self.bits is not None and y < self.bits.shape[0] \
            and x < self.bits.shape[1] else float("nan")
        self.hovered.emit(x, y, bits)

    def map_to_view(self, x: float, y: float, right: bool = False) -> QPointF:
        """The viewport position of image pixel (x, y) (for tests and tooltips)."""
        v = self.right if right else self.left
        return QPointF(v.mapFromScene(QPointF(x, y)))
