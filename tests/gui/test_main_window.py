"""The desktop application, driven as a user would (pytest-qt, offscreen, CPU, the tiny trained model)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QMessageBox

from shvc_gui.core import baselines, codec, container
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.qt import dialogs
from shvc_gui.qt.main_window import MainWindow
from shvc_gui.core.sizing import human_bytes
from shvc_gui.qt.queue_model import (CANCELLED, COL_BPD, COL_CODEC, COL_OVERHEAD, COL_SHVC, DONE, PAUSED,
                                     COL_STATUS, RUNNING, SKIPPED, WAITING)
from shvc_gui.qt.settings import Settings

JOB_TIMEOUT_MS = 240_000


@pytest.fixture
def window(qtbot, settings, trained_model):
    w = MainWindow(settings, model=trained_model)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.workers.shutdown()


def photo(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    arr = synthetic_photo(h, w, seed)
    Image.fromarray(arr).save(path)
    return arr


def drop(widget, paths) -> None:
    """Drag enter + drop of file URLs. Qt only routes drop events while a real drag runs, so the
    window's handlers get the events directly."""
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier)
    widget.dragEnterEvent(enter)
    assert enter.isAccepted()
    ev = QDropEvent(QPointF(20, 20), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier)
    widget.dropEvent(ev)
    assert ev.isAccepted()


def wait_idle(qtbot, window, timeout=JOB_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: window.queue.items and not any(it.active for it in window.queue.items), timeout=timeout)


def test_drop_folder_compresses_every_image(qtbot, window, tmp_path, trained_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    originals = {f"p{i}.png": photo(folder / f"p{i}.png", h, w, i) for i, (h, w) in
                 enumerate([(40, 48), (33, 70), (64, 64)])}
    drop(window, [folder])
    assert [it.src.name for it in window.queue.items] == sorted(originals)
    wait_idle(qtbot, window)
    m = window.queue
    for row, it in enumerate(m.items):
        assert it.status == DONE, it.message
        assert it.dst == folder / (it.src.stem + ".shvc") and it.dst.exists()
        size = it.dst.stat().st_size
        header = codec.read_header(it.dst)
        # The row shows what the core reported, and that is the real file.
        assert it.result.n_bytes == size
        assert m.data(m.index(row, COL_SHVC)) == human_bytes(size)
        assert m.data(m.index(row, COL_BPD)) == f"{8 * size / (3 * header.width * header.height):.3f}"
        assert m.data(m.index(row, COL_OVERHEAD)) == f"{header.initial_bits} b"
        assert it.result.initial_bits == header.initial_bits
        for c in ("png", "webp", "jxl"):
            assert m.data(m.index(row, COL_CODEC[c])) == f"{it.baselines[c].bpd:.3f}"
        # FLIF is chosen in the settings: its column shows only where a flif program is installed
        assert window.table.isColumnHidden(COL_CODEC["flif"]) != baselines.available("flif")
        img, _ = codec.decompress_bytes(it.dst.read_bytes(), model=trained_model)
        assert np.array_equal(img.pixels, originals[it.src.name])
        # the lowest BPD of the row is the highlighted one
        best = it.best_codec()
        assert m.data(m.index(row, {"shvc": COL_BPD, **COL_CODEC}[best]), Qt.FontRole).bold()
    total_row = len(m.items)
    t = m.totals()
    assert t["images"] == 3
    assert t["original"] == sum(it.original_bytes for it in m.items)
    assert t["shvc"] == sum(it.dst.stat().st_size for it in m.items)
    dims = sum(3 * it.width * it.height for it in m.items)
    assert m.data(m.index(total_row, COL_BPD)) == f"{8 * sum(it.dst.stat().st_size for it in m.items) / dims:.3f}"
    assert m.data(m.index(total_row, 0)) == "Total: 3 compressed"
    assert m.data(m.index(total_row, COL_STATUS)) == "3 of 3 done"


def test_ui_stays_responsive_during_a_job(qtbot, window, tmp_path):
    photo(tmp_path / "big.png", 256, 320, 5)        # 20 patches: several seconds on the CPU
    ticks = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    t0 = time.monotonic()
    window.add_paths([tmp_path / "big.png"])
    qtbot.waitUntil(lambda: window.queue.items[0].status != WAITING, timeout=60_000)
    for w in (900, 1100, 1000):                      # resizing while the worker codes
        window.resize(w, 700)
        qtbot.wait(100)
    wait_idle(qtbot, window)
    timer.stop()
    elapsed = time.monotonic() - t0
    assert window.queue.items[0].status == DONE
    assert elapsed > 1.0
    gaps = np.diff(ticks)
    # A blocked UI thread shows as one long gap; allow scheduling noise on a busy 2-core machine.
    assert len(ticks) >= 0.5 * elapsed / 0.05, (len(ticks), elapsed)
    assert gaps.max() < 1.0, gaps.max()


def test_cancel_leaves_no_partial_file(qtbot, window, tmp_path):
    photo(tmp_path / "big.png", 1536, 1536, 6)      # 576 patches: 9 groups
    window.add_paths([tmp_path / "big.png"])
    it = window.queue.items[0]
    qtbot.waitUntil(lambda: it.status == RUNNING and 0 < it.fraction < 0.5, timeout=60_000)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    assert window.act_cancel.isEnabled()
    qtbot.keyClick(window.table, Qt.Key_Escape)      # the Esc shortcut
    wait_idle(qtbot, window)
    assert it.status == CANCELLED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "settings.ini"]


def test_existing_file_is_not_overwritten_without_consent(qtbot, window, tmp_path, monkeypatch, trained_model):
    arr = photo(tmp_path / "a.png", 32, 40, 7)
    precious = tmp_path / "a.shvc"
    precious.write_bytes(b"someone's file")
    answers = []
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (answers.append(path), (dialogs.SKIP, False))[1])
    window.add_paths([tmp_path / "a.png"])
    assert answers == [precious]
    assert window.queue.items[0].status == SKIPPED
    assert precious.read_bytes() == b"someone's file"

    window.queue.remove_rows([0])
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (dialogs.KEEP_BOTH, False))
    window.add_paths([tmp_path / "a.png"])
    wait_idle(qtbot, window)
    assert precious.read_bytes() == b"someone's file"
    both = tmp_path / "a (2).shvc"
    img, _ = codec.decompress_bytes(both.read_bytes(), model=trained_model)
    assert np.array_equal(img.pixels, arr)

    window.queue.remove_rows([0])
    monkeypatch.setattr(window, "confirm_overwrite", lambda path, n: (dialogs.REPLACE, False))
    window.add_paths([tmp_path / "a.png"])
    wait_idle(qtbot, window)
    img, _ = codec.decompress_bytes(precious.read_bytes(), model=trained_model)
    assert np.array_equal(img.pixels, arr)


def _message_boxes():
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign", "crc"])
def test_opening_a_bad_shvc_shows_an_error(qtbot, window, tmp_path, trained_model, kind):
    good = tmp_path / "good.shvc"
    photo(tmp_path / "g.png", 40, 40, 8)
    codec.compress_file(tmp_path / "g.png", good, model=trained_model)
    data = good.read_bytes()
    bad = tmp_path / "bad.shvc"
    if kind == "garbage":
        bad.write_bytes(b"SHVC" + bytes(range(256)) * 4)
    elif kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        bad.write_bytes((tmp_path / "g.png").read_bytes())
    else:                                             # valid structure, wrong pixel checksum
        h, streams = container.read_container(data)
        h.pixel_crc ^= 1
        bad.write_bytes(container.write_container(h, streams))
    before = bad.read_bytes()
    drop(window, [bad])
    qtbot.waitUntil(lambda: bool(_message_boxes()), timeout=60_000)
    box = _message_boxes()[0]
    assert "bad.shvc" in box.windowTitle()
    assert box.text() and "Traceback" not in box.text()
    if kind == "crc":
        assert "checksum" in box.text()
    box.close()
    qtbot.waitUntil(lambda: not window.viewers, timeout=10_000)
    assert bad.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.shvc", "g.png", "good.shvc", "settings.ini"]


def test_open_shvc_shows_header_and_exports_exact_pixels(qtbot, window, tmp_path, trained_model):
    arr = photo(tmp_path / "o.png", 50, 37, 9)
    codec.compress_file(tmp_path / "o.png", tmp_path / "o.shvc", model=trained_model)
    viewer = window.open_shvc(tmp_path / "o.shvc")
    with qtbot.waitSignal(viewer.loaded, timeout=60_000):
        pass
    rows = {viewer.props.topLevelItem(i).text(0): viewer.props.topLevelItem(i).text(1)
            for i in range(viewer.props.topLevelItemCount())}
    h = codec.read_header(tmp_path / "o.shvc")
    assert rows["Dimensions"] == "37 × 50"
    assert rows["Model"] == trained_model.name and rows["Variant"] == h.variant
    assert rows["Initial bits"].startswith(f"{h.initial_bits} bits")
    out = tmp_path / "restored.png"
    assert viewer.export(out)
    assert np.array_equal(np.asarray(Image.open(out)), arr)
    assert not viewer.export(out)                     # exists: refused, not replaced
    assert viewer.error_dialog is not None and "exists" in viewer.error_dialog.text()
    viewer.close()


def test_paste_image_from_clipboard(qtbot, window, settings, tmp_path):
    settings.output_dir = tmp_path
    settings.auto_start = False
    arr = synthetic_photo(20, 30, 3)
    qimg = QImage(np.ascontiguousarray(arr).data, 30, 20, 90, QImage.Format_RGB888).copy()
    QGuiApplication.clipboard().setImage(qimg)
    qtbot.keyClick(window, Qt.Key_V, Qt.ControlModifier)
    assert len(window.queue.items) == 1
    src = window.queue.items[0].src
    assert src.parent == tmp_path and src.suffix == ".png"
    assert np.array_equal(np.asarray(Image.open(src).convert("RGB")), arr)


def test_settings_persist(tmp_path):
    path = str(tmp_path / "s.ini")
    s = Settings(QSettings(path, QSettings.IniFormat))
    s.output_dir, s.device, s.variant, s.codecs, s.auto_start = tmp_path, "cpu", "det", ["jxl", "png"], False
    s.sync()
    t = Settings(QSettings(path, QSettings.IniFormat))
    assert (t.output_dir, t.device, t.variant, t.codecs, t.auto_start) == (tmp_path, "cpu", "det", ("png", "jxl"), False)


def test_output_folder_setting(qtbot, window, settings, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    settings.output_dir = out
    photo(tmp_path / "x.png", 30, 30, 10)
    window.add_paths([tmp_path / "x.png"])
    wait_idle(qtbot, window)
    assert (out / "x.shvc").exists() and not (tmp_path / "x.shvc").exists()


def test_app_entry_point_starts_and_reports_a_bad_file(tmp_path):
    bad = tmp_path / "bad.shvc"
    bad.write_bytes(b"not a shvc file")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    p = subprocess.run([sys.executable, "-m", "shvc_gui", "--quit-after", "3", str(bad)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr


def test_pause_holds_the_job_and_resume_finishes_it(qtbot, window, tmp_path, trained_model):
    arr = photo(tmp_path / "p.png", 256, 256, 11)
    window.add_paths([tmp_path / "p.png"])
    it = window.queue.items[0]
    qtbot.waitUntil(lambda: it.status == RUNNING, timeout=60_000)
    assert window.act_pause.text() == "P&ause"
    window.act_pause.trigger()
    assert it.status == PAUSED
    assert window.act_pause.text() == "Res&ume" and window.act_pause.isChecked()      # Pause became Resume
    assert window.queue.data(window.queue.index(0, COL_STATUS)).startswith("Paused")
    qtbot.wait(300)
    held = (it.stage, it.fraction)
    qtbot.wait(2000)
    assert (it.stage, it.fraction) == held and it.status == PAUSED
    assert not (tmp_path / "p.shvc").exists()
    window.act_pause.trigger()
    assert window.act_pause.text() == "P&ause" and not window.act_pause.isChecked()
    wait_idle(qtbot, window)
    assert it.status == DONE
    img, _ = codec.decompress_bytes((tmp_path / "p.shvc").read_bytes(), model=trained_model)
    assert np.array_equal(img.pixels, arr)


def test_remove_running_item_cancels_it(qtbot, window, tmp_path):
    photo(tmp_path / "r.png", 256, 256, 12)
    window.add_paths([tmp_path / "r.png"])
    it = window.queue.items[0]
    qtbot.waitUntil(lambda: it.status == RUNNING, timeout=60_000)
    window.select_item(it.id)
    window.act_remove.trigger()
    assert window.queue.items == []
    qtbot.waitUntil(lambda: not window.workers.controls, timeout=60_000)
    assert not (tmp_path / "r.shvc").exists()
