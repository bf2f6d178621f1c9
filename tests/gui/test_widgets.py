"""The chart, the heatmap colouring and the synced image/heatmap views."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent

from shvc_gui.core.heatmap import LUT, colorize, scale_ticks
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.qt.chart import BpdChart
from shvc_gui.qt.heatmap_view import SyncedImageViews


def luminance(rgb):
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def test_colorize_is_monotonic_and_handles_nan():
    bits = np.array([[0.0, 5.0, 10.0, np.nan, 100.0]])
    out = colorize(bits, vmax=10.0)
    assert out.shape == (1, 5, 3) and out.dtype == np.uint8
    lum = luminance(out.astype(float))[0]
    assert lum[0] < lum[1] < lum[2]
    assert np.array_equal(out[0, 3], LUT[0]) and np.array_equal(out[0, 4], LUT[255])
    assert np.all(np.diff(luminance(LUT.astype(float))) > -1.0)     # the ramp never gets darker
    assert colorize(np.zeros((2, 2))).shape == (2, 2, 3)
    assert scale_ticks(12.0)[0] == 0 and scale_ticks(12.0)[-1] <= 12.0 and len(scale_ticks(12.0)) >= 3


def grab_colours(widget) -> int:
    img = widget.grab().toImage()
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return len(np.unique(arr[:, : 4 * img.width()].reshape(-1, 4), axis=0))


def test_chart_draws_groups_and_grows(qtbot):
    chart = BpdChart()
    qtbot.addWidget(chart)
    chart.resize(700, 300)
    assert grab_colours(chart) > 1                       # the hint text
    one = [("a.png", {"shvc": 3.1, "png": 4.2, "webp": 3.6, "jxl": 3.4, "flif": None})]
    chart.set_groups(one)
    h1 = chart.sizeHint().height()
    assert grab_colours(chart) > 6                       # bars in the codec colours
    many = [(f"image-{i}-with-a-rather-long-name.png", one[0][1]) for i in range(30)]
    chart.set_groups(many)
    assert chart.sizeHint().height() > 10 * h1 // 2
    chart.resize(700, chart.sizeHint().height())
    chart.grab()
    chart.clear()
    assert chart.groups == []


@pytest.fixture
def views(qtbot):
    v = SyncedImageViews()
    qtbot.addWidget(v)
    v.resize(800, 400)
    v.show()
    qtbot.waitExposed(v)
    rgb = synthetic_photo(120, 160, 1)
    bits = np.tile(np.arange(160, dtype=np.float32) / 10, (120, 1))
    v.set_images(rgb, bits)
    return v


def test_zoom_and_scroll_stay_in_sync(qtbot, views):
    views.set_zoom(4.0)
    assert views.left.zoom() == pytest.approx(4.0) and views.right.zoom() == pytest.approx(4.0)
    views.left.horizontalScrollBar().setValue(200)
    views.left.verticalScrollBar().setValue(50)
    assert views.right.horizontalScrollBar().value() == 200
    assert views.right.verticalScrollBar().value() == 50
    views.right.horizontalScrollBar().setValue(120)      # and the other way round
    assert views.left.horizontalScrollBar().value() == 120
    before = views.zoom()
    pos = QPointF(100, 100)
    wheel = QWheelEvent(pos, views.right.viewport().mapToGlobal(pos), QPoint(), QPoint(0, 120),
                        Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    views.right.wheelEvent(wheel)
    assert views.zoom() == pytest.approx(before * 1.25)
    assert views.right.zoom() == pytest.approx(views.left.zoom())
    views.button_1_1.click()
    assert views.zoom() == 1.0
    assert not views.left.renderHints() & views.left.renderHints().SmoothPixmapTransform   # nearest at 1:1
    views.button_fit.click()
    assert views.zoom() < 4.0
    assert views.zoom_label.text().endswith("%")


def test_hover_reports_bits_of_the_pixel(qtbot, views):
    views.set_zoom(2.0)
    views.left.horizontalScrollBar().setValue(0)
    views.left.verticalScrollBar().setValue(0)
    got = []
    views.hovered.connect(lambda x, y, b: got.append((x, y, b)))
    p = views.map_to_view(37.5, 20.5).toPoint()
    ev = QMouseEvent(QMouseEvent.MouseMove, QPointF(p), views.left.viewport().mapToGlobal(QPointF(p)),
                     Qt.NoButton, Qt.NoButton, Qt.NoModifier)
    views.left.mouseMoveEvent(ev)
    assert got and got[-1][:2] == (37, 20)
    assert got[-1][2] == pytest.approx(3.7)


def test_no_bits_map_shows_message(qtbot, views):
    views.set_images(synthetic_photo(30, 40, 2), None)
    assert views.right_stack.currentWidget() is views.message
    assert "No heatmap" in views.message.text()
    views.show_heatmap(False)
    assert not views.right_stack.isVisible()
