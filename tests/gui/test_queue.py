"""The queue as a user meets it: counts that agree, pause that turns into resume, Esc that cancels even
while paused, retry, sizes against the original ("grew by" in red, never a negative saving), keeping the
original when it would grow, a layout without wasted or hidden columns, and the empty window's drop zone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer

from shvc_gui.core import baselines, codec
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.qt import dialogs
from shvc_gui.qt.heatmap_view import NO_HEATMAP, SCALE_BPD
from shvc_gui.qt.main_window import MainWindow
from shvc_gui.qt.queue_model import (CANCELLED, COL_CHANGE, COL_CODEC, COL_IMAGE, COL_SHVC, COL_STATUS, DONE, GREW,
                                     KEPT, PAUSED, RUNNING, SAVED, SKIPPED)

JOB_TIMEOUT_MS = 240_000


@pytest.fixture
def window(qtbot, settings, trained_model):
    w = MainWindow(settings, model=trained_model)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.workers.shutdown()


def photo(path, h, w, seed, **save):
    arr = synthetic_photo(h, w, seed)
    Image.fromarray(arr).save(path, **save)
    return arr


def wait_idle(qtbot, window, timeout=JOB_TIMEOUT_MS):
    qtbot.waitUntil(lambda: window.queue.items and not any(it.active for it in window.queue.items), timeout=timeout)


def cell(window, row, col, role=Qt.DisplayRole):
    m = window.queue
    return m.data(m.index(row, col), role)


def total(window, col, role=Qt.DisplayRole):
    return cell(window, len(window.queue.items), col, role)


def test_total_row_and_status_bar_count_alike_and_a_skip_is_counted(qtbot, window, tmp_path, monkeypatch):
    for i in range(3):
        photo(tmp_path / f"c{i}.png", 96, 96, 30 + i)
    (tmp_path / "c1.shvc").write_bytes(b"keep me")
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (dialogs.SKIP, False))
    seen = []

    def record():
        if window.overall.isVisible():          # the running job's progress, as the status bar shows it
            seen.append((window.overall.format(), total(window, COL_STATUS)))
    timer = QTimer()
    timer.timeout.connect(record)
    timer.start(5)
    window.add_paths(sorted(tmp_path.glob("c*.png")))
    assert window.queue.items[1].status == SKIPPED
    wait_idle(qtbot, window)
    timer.stop()
    assert seen and all(bar == row for bar, row in seen), seen
    assert ("1 of 3 done", "1 of 3 done") in seen           # the skip counts as done from the start
    assert total(window, COL_STATUS) == "3 of 3 done"
    assert total(window, COL_IMAGE) == "Total: 2 compressed"
    assert "3 of 3 done" in window.status.text() and not window.overall.isVisible()
    assert "1 skipped" in total(window, COL_STATUS, Qt.ToolTipRole)


def test_esc_while_paused_cancels_and_retry_compresses(qtbot, window, tmp_path, trained_model):
    arr = photo(tmp_path / "big.png", 1024, 1024, 40)           # 256 patches: 4 groups
    window.add_paths([tmp_path / "big.png"])
    it = window.queue.items[0]
    qtbot.waitUntil(lambda: it.status == RUNNING and it.stage == "compress" and 0 < it.fraction < 0.5,
                    timeout=60_000)
    window.act_pause.trigger()
    assert it.status == PAUSED and window.act_pause.text() == "Res&ume"
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window.table, Qt.Key_Escape)
    wait_idle(qtbot, window)
    assert it.status == CANCELLED                           # not resumed and finished
    assert not (tmp_path / "big.shvc").exists()
    assert window.act_pause.text() == "P&ause" and not window.act_pause.isChecked()
    assert total(window, COL_STATUS) == "1 of 1 done"

    window.select_item(it.id)
    assert window.act_retry.isEnabled()
    window.act_retry.trigger()
    assert it.status in (RUNNING, "Waiting") and total(window, COL_STATUS) == "0 of 1 done"
    wait_idle(qtbot, window)
    assert it.status == DONE
    img, _ = codec.decompress_bytes((tmp_path / "big.shvc").read_bytes(), model=trained_model)
    assert np.array_equal(img.pixels, arr)
    window.select_item(it.id)
    assert not window.act_retry.isEnabled()                 # nothing to retry on a done row


def test_a_skipped_row_can_be_retried(qtbot, window, tmp_path, monkeypatch):
    photo(tmp_path / "s.png", 40, 40, 41)
    (tmp_path / "s.shvc").write_bytes(b"old")
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (dialogs.SKIP, False))
    window.add_paths([tmp_path / "s.png"])
    it = window.queue.items[0]
    assert it.status == SKIPPED
    window.select_item(it.id)
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (dialogs.REPLACE, False))
    window.act_retry.trigger()
    wait_idle(qtbot, window)
    assert it.status == DONE and (tmp_path / "s.shvc").read_bytes()[:4] == b"SHVC"


def test_grew_by_in_red_and_saved_in_green_never_negative(qtbot, window, tmp_path):
    photo(tmp_path / "small.jpg", 64, 64, 42, quality=30)          # a JPEG: its lossless copy grows
    photo(tmp_path / "raw.bmp", 64, 64, 43)                         # uncompressed: it shrinks
    window.add_paths([tmp_path / "small.jpg", tmp_path / "raw.bmp"])
    wait_idle(qtbot, window)
    grew, shrank = window.queue.items
    assert grew.status == DONE and grew.dst.exists()
    assert cell(window, 0, COL_CHANGE).startswith("grew by ")
    assert cell(window, 0, COL_CHANGE, Qt.ForegroundRole).color() == GREW
    assert cell(window, 1, COL_CHANGE).startswith("saved ")
    assert cell(window, 1, COL_CHANGE, Qt.ForegroundRole).color() == SAVED
    ratio = grew.dst.stat().st_size / grew.original_bytes
    p = 100 * (ratio - 1)
    assert cell(window, 0, COL_CHANGE) == f"grew by {p:.1f} %" if p < 100 else f"grew by {p:.0f} %"
    tip = cell(window, 0, COL_CHANGE, Qt.ToolTipRole)
    assert f"{100 * ratio:.1f} % of the original" in tip and "Smallest: the original file" in tip
    texts = [cell(window, r, c) or "" for r in range(3) for c in range(len(COL_CODEC) + 7)]
    assert not any("-" in t and ("saved" in t or "KB" in t or " B" in t) for t in texts), texts
    assert total(window, COL_CHANGE) in (
        f"grew by {abs(100 * (sum(it.result.n_bytes for it in (grew, shrank)) / sum(it.original_bytes for it in (grew, shrank)) - 1)):.1f} %",
        f"saved {abs(100 * (sum(it.result.n_bytes for it in (grew, shrank)) / sum(it.original_bytes for it in (grew, shrank)) - 1)):.1f} %")


def test_keep_original_when_larger(qtbot, window, settings, tmp_path):
    settings.skip_larger = True
    photo(tmp_path / "small.jpg", 64, 64, 44, quality=30)
    photo(tmp_path / "raw.bmp", 64, 64, 45)
    window.add_paths([tmp_path / "small.jpg", tmp_path / "raw.bmp"])
    wait_idle(qtbot, window)
    kept, written = window.queue.items
    assert kept.status == KEPT and not (tmp_path / "small.shvc").exists() and kept.dst is None
    assert cell(window, 0, COL_STATUS) == "Kept original"
    assert cell(window, 0, COL_CHANGE).startswith("grew by ")
    message = cell(window, 0, COL_STATUS, Qt.ToolTipRole)
    assert "no .shvc file was written" in message and "Smallest: the original file" in message
    assert written.status == DONE and (tmp_path / "raw.shvc").exists()
    # the byte totals are over the written file only; both count as done
    assert total(window, COL_SHVC) == cell(window, 1, COL_SHVC)
    assert total(window, COL_STATUS) == "2 of 2 done"
    window.select_item(kept.id)
    assert window.act_retry.isEnabled() and not window.act_folder_open.isEnabled()


def test_table_uses_the_width_and_keeps_the_totals_in_sight(qtbot, window, tmp_path, settings):
    settings.auto_start = False
    long = tmp_path / ("a-very-long-file-name-of-a-holiday-photograph-" * 2 + "end.png")
    photo(long, 20, 20, 46)
    for i in range(8):
        photo(tmp_path / f"n{i}.png", 20, 20, 50 + i)
    window.add_paths([long] + sorted(tmp_path.glob("n*.png")))
    t = window.table

    def used():
        return sum(t.columnWidth(c) for c in range(window.queue.columnCount()) if not t.isColumnHidden(c))
    for size in ((1280, 800), (800, 600)):
        window.resize(*size)
        # every column in sight, and no space left unused (the layout settles after the resize)
        qtbot.waitUntil(lambda: t.horizontalScrollBar().maximum() == 0 and abs(used() - t.viewport().width()) <= 2,
                        timeout=3000)
        qtbot.wait(200)                                                  # and stays so
        assert t.horizontalScrollBar().maximum() == 0 and abs(used() - t.viewport().width()) <= 2, size
        footer = window.queue_view.footer
        assert footer.isVisible() and footer.visibleRegion().boundingRect().height() >= footer.height() - 2
        assert footer.model().rowCount() == 1
        assert footer.columnWidth(COL_IMAGE) == t.columnWidth(COL_IMAGE)
    assert window.table.isColumnHidden(COL_CODEC["flif"]) == (not baselines.available("flif"))
    window.resize(1280, 800)
    qtbot.wait(50)
    assert window.table.columnWidth(COL_IMAGE) > 400                   # the long name gets the room


def test_running_row_is_scrolled_into_view(qtbot, window, tmp_path, settings):
    settings.codecs = ()
    window.resize(800, 600)
    for i in range(7):
        photo(tmp_path / f"r{i:02d}.png", 40, 40, 60 + i)
    window.add_paths(sorted(tmp_path.glob("r*.png")))
    last = window.queue.items[-1]
    assert not window.queue_view.is_row_visible(len(window.queue.items) - 1)
    qtbot.waitUntil(lambda: last.status != "Waiting", timeout=JOB_TIMEOUT_MS)
    assert window.queue_view.is_row_visible(len(window.queue.items) - 1)
    wait_idle(qtbot, window)


def test_title_drop_zone_and_heatmap_caption(qtbot, window, tmp_path):
    assert "SHVC" not in window.windowTitle()          # Qt appends the application name once
    assert window.pages.currentWidget() is window.drop_zone
    photo(tmp_path / "h.png", 40, 48, 47)
    Image.fromarray(synthetic_photo(40, 48, 48)).convert("P").save(tmp_path / "pal.png")   # not model-coded
    window.add_paths([tmp_path / "h.png", tmp_path / "pal.png"])
    assert window.pages.currentWidget() is window.split
    wait_idle(qtbot, window)
    window.tabs.setCurrentWidget(window.detail_page)
    h, pal = window.queue.items
    window.select_item(h.id)
    qtbot.waitUntil(lambda: "bpd" in window.detail_label.text(), timeout=30_000)
    assert "0–8 scale" in window.detail_label.text() and window.detail.legend.vmax == SCALE_BPD
    assert window.detail.legend.isVisible()
    window.select_item(pal.id)
    qtbot.waitUntil(lambda: "pal.png" in window.detail_label.text() and "bpd" in window.detail_label.text(),
                    timeout=30_000)
    assert pal.result.bits_map is None
    assert "Right" not in window.detail_label.text() and "scale" not in window.detail_label.text()
    assert window.detail.message.text() == NO_HEATMAP and not window.detail.legend.isVisible()
    window.select_item(h.id)
    window.act_remove.trigger()
    window.select_item(pal.id)
    window.act_remove.trigger()
    assert window.pages.currentWidget() is window.drop_zone
