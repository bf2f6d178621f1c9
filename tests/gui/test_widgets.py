"""The heatmap colouring, the BPD chart and the synced image/heatmap views."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from shvc_gui.core import heatmap
from shvc_gui.core.heatmap import LUT, colorize, default_vmax, scale_ticks
from shvc_gui.qt.chart import COLOURS, BpdChart
from shvc_gui.qt.heatmap_view import NO_HEATMAP, SyncedImageViews


def luminance(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    return 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like picture: smooth gradients, a flat patch, noise that grows to the right."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([200 * x + 30 * np.sin(9 * y), 120 + 80 * np.sin(5 * x + 3 * y), 220 * (1 - y)], axis=-1)
    img[h // 3: h // 2, w // 3: w // 2] = (230, 220, 60)
    img += rng.normal(size=(h, w, 3)) * (2 + 12 * x[..., None])
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# -- colour map -------------------------------------------------------------------------------------

def test_lut_is_a_dark_to_bright_ramp():
    assert LUT.shape == (256, 3) and LUT.dtype == np.uint8
    lum = luminance(LUT)
    assert np.all(np.diff(lum) > 0)
    assert lum[0] < 5 and lum[255] > 240


def test_colorize_shape_dtype_and_monotonic():
    bits = np.random.default_rng(1).uniform(0, 30, size=(7, 9))
    out = colorize(bits, vmax=30.0)
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8
    order = np.argsort(bits, axis=None)
    lum = luminance(out).ravel()[order]
    assert np.all(np.diff(lum) >= 0)                       # more bits never look darker
    ramp = colorize(np.array([[0.0, 5.0, 10.0, 20.0, 30.0]]), vmax=30.0)
    assert np.all(np.diff(luminance(ramp)[0]) > 10)
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 3)))


def test_colorize_nan_inf_and_vmax():
    out = colorize(np.array([[np.nan, -3.0, 10.0, 25.0, np.inf]]), vmax=10.0)
    assert np.array_equal(out[0, 0], LUT[0]) and np.array_equal(out[0, 1], LUT[0])
    assert np.array_equal(out[0, 2], LUT[255]) and np.array_equal(out[0, 3], LUT[255])
    assert np.array_equal(out[0, 4], LUT[255])
    assert np.array_equal(colorize(np.array([[5.0]]), vmax=10.0)[0, 0], LUT[128])

    bits = (np.arange(1000, dtype=np.float64) / 10).reshape(20, 50)
    assert default_vmax(bits) == pytest.approx(np.percentile(bits, 99))
    assert np.array_equal(colorize(bits), colorize(bits, vmax=np.percentile(bits, 99)))
    assert np.array_equal(colorize(bits)[-1, -1], LUT[255])        # the top 1 % saturates
    flat = colorize(np.zeros((3, 3)))                                 # vmax falls back to an epsilon
    assert np.all(flat == LUT[0])
    assert default_vmax(np.full((2, 2), np.nan)) > 0


def test_scale_ticks_are_round_and_within_range():
    assert scale_ticks(12.0) == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert scale_ticks(30.0) == [0.0, 10.0, 20.0, 30.0]
    assert scale_ticks(0.0) == [0.0] and scale_ticks(float("nan")) == [0.0]
    for vmax in (0.37, 1.0, 3.3, 7.0, 18.5, 22.4, 96.0, 1234.0):
        ticks = scale_ticks(vmax)
        assert ticks[0] == 0.0 and ticks[-1] <= vmax and 3 <= len(ticks) <= 8, (vmax, ticks)
        assert np.allclose(np.diff(ticks), ticks[1]), (vmax, ticks)


def test_heatmap_module_does_not_use_qt():
    assert "PySide6" not in Path(heatmap.__file__).read_text()


# -- chart ------------------------------------------------------------------------------------------

def pixels(widget) -> np.ndarray:
    """The widget rendered as an (H, W, 3) array."""
    img = widget.grab().toImage().convertToFormat(QImage.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : 3 * img.width()].reshape(img.height(), img.width(), 3).copy()     # img's buffer dies with it


def n_colours(arr: np.ndarray) -> int:
    return len(np.unique(arr.reshape(-1, 3), axis=0))


def has_colour(arr: np.ndarray, colour: QColor) -> bool:
    return bool(np.any(np.all(arr == (colour.red(), colour.green(), colour.blue()), axis=-1)))


ONE = ("holiday-photo.png", {"shvc": 3.41, "png": 4.82, "webp": 3.93, "jxl": 3.62, "flif": None})


def test_chart_empty_shows_a_hint(qtbot):
    chart = BpdChart()
    qtbot.addWidget(chart)
    chart.resize(600, 200)
    arr = pixels(chart)
    assert n_colours(arr) > 2                              # text on the background
    assert not any(has_colour(arr, c) for c in COLOURS.values())


def test_chart_draws_bars_and_grows_with_groups(qtbot):
    chart = BpdChart()
    qtbot.addWidget(chart)
    chart.set_groups([ONE])
    h1 = chart.sizeHint().height()
    chart.resize(700, h1)
    arr = pixels(chart)
    for c in ("shvc", "png", "webp", "jxl"):
        assert has_colour(arr, COLOURS[c]), c
    # the bars are proportional to the values: PNG's (4.82) is longer than SHVC's (3.41)
    rows = {c: np.all(arr == (COLOURS[c].red(), COLOURS[c].green(), COLOURS[c].blue()), axis=-1) for c in COLOURS}
    width = {c: rows[c].sum(axis=1).max() for c in ("shvc", "png")}
    assert width["png"] / width["shvc"] == pytest.approx(4.82 / 3.41, rel=0.1)

    many = [(f"image-{i:02d}-with-a-really-quite-long-file-name-from-a-camera-DSC{i:05d}.png", ONE[1])
            for i in range(29)] + [("All 30 images", {"shvc": 3.0, "png": 4.0, "webp": None, "jxl": 3.5})]
    chart.set_groups(many)
    assert chart.sizeHint().height() > 20 * h1 // 2
    assert chart.minimumSizeHint().height() == chart.sizeHint().height()
    scroll = QScrollArea()
    qtbot.addWidget(scroll)
    scroll.setWidgetResizable(True)
    scroll.setWidget(chart)
    scroll.resize(700, 400)
    scroll.show()
    qtbot.waitExposed(scroll)
    assert chart.height() >= chart.sizeHint().height() and scroll.verticalScrollBar().maximum() > 0
    assert n_colours(pixels(chart)) > 6

    chart.clear()
    assert chart.groups == [] and chart.sizeHint().height() < h1 + 50


# -- synced views -----------------------------------------------------------------------------------

H, W = 120, 160


@pytest.fixture
def views(qtbot):
    v = SyncedImageViews()
    qtbot.addWidget(v)
    v.resize(800, 400)
    v.show()
    qtbot.waitExposed(v)
    bits = np.tile(np.arange(W, dtype=np.float32) / 10, (H, 1))      # bits at (x, y) = x / 10
    v.set_images(photo(H, W), bits)
    return v


def send_mouse(widget, kind, pos: QPointF, button=Qt.NoButton, buttons=Qt.NoButton):
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, ev)


def test_set_zoom_is_shared(qtbot, views):
    views.set_zoom(2.0)
    assert views.left.transform().m11() == pytest.approx(2.0)
    assert views.right.transform().m11() == pytest.approx(2.0)
    assert views.zoom() == pytest.approx(2.0) and views.zoom_label.text() == "200 %"
    views.right.set_zoom(3.0)                # directly on the right view: the left follows
    views._sync_from(views.right)
    assert views.left.zoom() == pytest.approx(3.0)


def test_scrolling_is_shared_both_ways(qtbot, views):
    views.set_zoom(4.0)
    qtbot.wait(10)                                   # let the scroll bars appear
    assert views.left.horizontalScrollBar().maximum() > 250
    views.left.horizontalScrollBar().setValue(200)
    views.left.verticalScrollBar().setValue(50)
    assert views.right.horizontalScrollBar().value() == 200
    assert views.right.verticalScrollBar().value() == 50
    views.right.horizontalScrollBar().setValue(120)
    views.right.verticalScrollBar().setValue(70)
    assert views.left.horizontalScrollBar().value() == 120
    assert views.left.verticalScrollBar().value() == 70


def test_dragging_pans_both_views(qtbot, views):
    views.set_zoom(4.0)
    qtbot.wait(10)
    views.left.horizontalScrollBar().setValue(100)
    vp = views.left.viewport()
    send_mouse(vp, QEvent.MouseButtonPress, QPointF(200, 150), Qt.LeftButton, Qt.LeftButton)
    send_mouse(vp, QEvent.MouseMove, QPointF(150, 150), Qt.NoButton, Qt.LeftButton)
    send_mouse(vp, QEvent.MouseButtonRelease, QPointF(150, 150), Qt.LeftButton, Qt.NoButton)
    assert views.left.horizontalScrollBar().value() == 150
    assert views.right.horizontalScrollBar().value() == 150


def test_wheel_zooms_around_the_cursor(qtbot, views):
    views.set_zoom(4.0)                      # scrolled, so the image can move under the cursor
    qtbot.wait(10)
    views.left.horizontalScrollBar().setValue(100)
    views.left.verticalScrollBar().setValue(80)
    vp = views.right.viewport()
    pos = QPointF(120, 90)
    under = views.right.mapToScene(pos.toPoint())
    before = views.zoom()
    wheel = QWheelEvent(pos, vp.mapToGlobal(pos), QPoint(), QPoint(0, 120), Qt.NoButton, Qt.NoModifier,
                        Qt.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert views.zoom() == pytest.approx(before * 1.25)
    assert views.right.zoom() == pytest.approx(views.left.zoom())
    after = views.right.mapToScene(pos.toPoint())
    assert abs(after.x() - under.x()) <= 1 and abs(after.y() - under.y()) <= 1      # the point stays put
    assert views.left.horizontalScrollBar().value() == views.right.horizontalScrollBar().value()


def test_buttons_and_rendering_modes(qtbot, views):
    views.set_zoom(4.0)
    views.button_1_1.click()
    assert views.zoom() == 1.0 and views.zoom_label.text() == "100 %"
    for v in (views.left, views.right):                  # nearest neighbour from 1:1 up
        assert not v.renderHints() & QPainter.SmoothPixmapTransform
        assert v.item.transformationMode() == Qt.FastTransformation
    views.button_zoom_in.click()
    assert views.zoom() == pytest.approx(1.25)
    views.button_zoom_out.click()
    views.button_zoom_out.click()
    assert views.zoom() == pytest.approx(0.8)
    for v in (views.left, views.right):                  # smooth when shrunk
        assert v.renderHints() & QPainter.SmoothPixmapTransform
        assert v.item.transformationMode() == Qt.SmoothTransformation


def test_fit_shows_the_whole_image_and_follows_resizes(qtbot, views):
    views.set_zoom(5.0)
    views.button_fit.click()
    qtbot.wait(10)
    room = views.left.viewport().size()
    z = views.zoom()
    assert z * W <= room.width() and z * H <= room.height()
    assert max(z * W / room.width(), z * H / room.height()) > 0.95
    assert views.left.horizontalScrollBar().maximum() == 0 and views.right.verticalScrollBar().maximum() == 0
    views.resize(1200, 600)                       # still fitting after a resize
    qtbot.waitUntil(lambda: views.zoom() > z * 1.2, timeout=2000)
    views.set_zoom(2.0)                           # a chosen zoom is kept
    views.resize(900, 450)
    qtbot.wait(20)
    assert views.zoom() == pytest.approx(2.0)


def test_hover_reports_the_pixel_and_its_bits(qtbot, views):
    views.set_zoom(2.0)
    views.left.horizontalScrollBar().setValue(0)
    views.left.verticalScrollBar().setValue(0)
    for right in (False, True):
        with qtbot.waitSignal(views.hovered, timeout=1000) as blocker:
            pos = views.map_to_view(37.5, 20.5, right=right)
            view = views.right if right else views.left
            send_mouse(view.viewport(), QEvent.MouseMove, pos)
        x, y, bits = blocker.args
        assert (x, y) == (37, 20)
        assert bits == pytest.approx(3.7 / 3)                   # bits per pixel -> bits per dimension
        assert "x 37, y 20" in views.pixel_label.text() and "1.23 bpd" in views.pixel_label.text()


def test_without_bits_map_the_heatmap_pane_explains(qtbot, views):
    got = []
    views.hovered.connect(lambda *a: got.append(a))
    views.set_images(photo(30, 40, 2)[..., 0], None)          # greyscale works too
    assert views.right_stack.currentWidget() is views.message
    assert views.message.text() == NO_HEATMAP and views.message.isVisible()
    assert not views.legend.isVisible() and views.bits is None
    views.set_zoom(4.0)
    send_mouse(views.left.viewport(), QEvent.MouseMove, views.map_to_view(5.5, 6.5))
    assert got and got[-1][:2] == (5, 6) and math.isnan(got[-1][2])
    views.set_images(photo(30, 40, 2), np.ones((30, 40)))       # and back
    assert views.right_stack.currentWidget() is views.right and views.legend.isVisible()


def test_rgba_clear_and_mismatched_maps(qtbot, views):
    rgba = np.dstack([photo(20, 30), np.full((20, 30), 255, np.uint8)])
    views.set_images(rgba, np.zeros((20, 30)))
    assert views.left.scene().sceneRect().size().toTuple() == (30, 20)
    with pytest.raises(ValueError):
        views.set_images(photo(20, 30), np.zeros((30, 20)))
    views.clear()
    assert views.bits is None and views.left.item.pixmap().isNull() and views.right.item.pixmap().isNull()
