"""Screenshots of the application with results (for the README and for looking at the layout).

Written to $SHVC_SCREENSHOT_DIR (``make screenshots`` sets docs/screenshots) or a temporary folder.
$SHVC_SCREENSHOT_IMAGES may name a folder of photographs (e.g. the corpus' validation images;
crops of them are used) and SHVC_SCREENSHOT_SHIPPED=1 uses the shipped model instead of the tiny one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.qt.main_window import MainWindow
from shvc_gui.qt.queue_model import DONE, RUNNING
from shvc_gui.qt.settings import Settings


def _images(folder: Path) -> list[Path]:
    src = os.environ.get("SHVC_SCREENSHOT_IMAGES")
    out = []
    if src:
        for i, p in enumerate(sorted(Path(src).glob("*.png"))[:4]):
            im = Image.open(p).convert("RGB")
            w, h = im.size
            cw, ch = min(w, 320), min(h, 224)
            crop = im.crop(((w - cw) // 2, (h - ch) // 2, (w + cw) // 2, (h + ch) // 2))
            name = p.name if i < 3 else p.stem + ".jpg"          # a JPEG source: its lossless copy grows
            crop.save(folder / name, **({"quality": 85} if name.endswith(".jpg") else {}))
            out.append(folder / name)
    if not out:
        for i, (h, w) in enumerate([(96, 128), (64, 160), (128, 96)]):
            Image.fromarray(synthetic_photo(h, w, 20 + i)).save(folder / f"photo-{i + 1}.png")
            out.append(folder / f"photo-{i + 1}.png")
        Image.fromarray(synthetic_photo(96, 128, 23)).save(folder / "photo-4.jpg", quality=85)
        out.append(folder / "photo-4.jpg")
    return out


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def shots(tmp_path):
    d = Path(os.environ.get("SHVC_SCREENSHOT_DIR") or tmp_path / "shots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_screenshots(qtbot, tmp_path, shots, trained_model):
    model = trained_model
    if os.environ.get("SHVC_SCREENSHOT_SHIPPED") == "1":
        from shvc_gui.core.weights import load_model
        model = load_model()
    folder = tmp_path / "Photos"
    folder.mkdir()
    _images(folder)
    settings = Settings(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    w = MainWindow(settings, model=model)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.grab().save(str(shots / "empty-1280x800.png"))
    written = {}
    w.add_paths([folder])
    # mid-run: held by Pause (the button now says Resume) so that the picture is steady
    qtbot.waitUntil(lambda: any(it.status == RUNNING and 0.2 < it.fraction < 0.9 for it in w.queue.items),
                    timeout=600_000)
    w.toggle_pause()
    qtbot.wait(300)
    written["running-1280x800.png"] = w.grab()
    w.toggle_pause()
    qtbot.waitUntil(lambda: all(it.status == DONE for it in w.queue.items), timeout=600_000)
    qtbot.wait(200)
    w.tabs.setCurrentIndex(0)
    written["main-1280x800.png"] = w.grab()
    w.select_item(w.queue.items[0].id)
    w.tabs.setCurrentWidget(w.detail_page)
    qtbot.waitUntil(lambda: "bits per dimension" in w.detail_label.text(), timeout=30_000)
    assert w.detail.legend.isVisible()
    qtbot.wait(100)
    w.detail.fit()
    written["heatmap-1280x800.png"] = w.grab()
    w.resize(800, 600)
    w.tabs.setCurrentIndex(0)
    qtbot.wait(200)
    written["main-800x600.png"] = w.grab()
    w.tabs.setCurrentWidget(w.detail_page)
    qtbot.wait(200)
    w.detail.fit()
    written["heatmap-800x600.png"] = w.grab()
    viewer = w.open_shvc(w.queue.items[0].dst)
    with qtbot.waitSignal(viewer.loaded, timeout=120_000):
        pass
    viewer.resize(1100, 650)
    qtbot.wait(100)
    viewer.view.fit()
    written["open-shvc.png"] = viewer.grab()
    viewer.close()
    w.workers.shutdown()
    for name, pm in written.items():
        assert pm.save(str(shots / name))
        arr = _pixels(shots / name)
        assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 50, name     # a real picture, not a blank
    assert _pixels(shots / "main-1280x800.png").shape[:2] == (800, 1280)
    assert _pixels(shots / "main-800x600.png").shape[:2] == (600, 800)
