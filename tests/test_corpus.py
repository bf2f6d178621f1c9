"""Corpus builder on images the test makes: photo selection, split by source, deterministic bytes."""

import hashlib
import json

import numpy as np
from PIL import Image

from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.train.corpus import build_from_images, identity_of, load_corpus, split_of


def _make_sources(d):
    d.mkdir()
    paths = []
    for i in range(24):
        img = synthetic_photo(320, 400, seed=i)
        noisy = np.clip(img.astype(int) + np.random.default_rng(i).integers(-12, 13, img.shape), 0, 255)
        for size in ((400, 320), (200, 160)):          # the same picture shipped at two sizes
            p = d / f"photo{i:02d}-{size[0]}x{size[1]}.jpg"
            Image.fromarray(noisy.astype(np.uint8)).resize(size).save(p, quality=92)
            paths.append(p)
    flat = d / "flat-1920x1080.png"
    Image.new("RGB", (400, 300), (30, 90, 200)).save(flat)
    grad = d / "gradient.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))[..., None].repeat(3, 2)).save(grad)
    return paths + [flat, grad]


def test_build_selects_splits_and_is_deterministic(tmp_path):
    paths = _make_sources(tmp_path / "src")
    a = build_from_images(paths, tmp_path / "a", log=lambda s: None)
    b = build_from_images(paths, tmp_path / "b", log=lambda s: None)
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    names = [f["file"] for f in a["files"]]
    assert len(names) == 24                                      # one per picture, flat art dropped
    assert not any("flat" in n or "gradient" in n for n in names)
    for f in a["files"]:
        data = (tmp_path / "a" / f["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert data == (tmp_path / "b" / f["file"]).read_bytes()
        assert max(f["width"], f["height"]) <= 200              # downsampled by >= 2 from the 400-px source
        assert f["split"] == split_of(f["source"]["identity"])
    # a picture and its other shipped size share one identity, so they can never straddle the split
    assert identity_of("p", "photo03-400x320.jpg") == identity_of("p", "photo03-200x160.jpg")
    sel = (tmp_path / "a" / "selection.tsv").read_text()
    assert "flat" in sel and "smaller size of the same picture" in sel
    counts = json.loads((tmp_path / "a" / "manifest.json").read_text())["counts"]
    assert counts["train"] + counts["val"] == 24
    imgs = load_corpus(tmp_path / "a", "train")
    assert len(imgs) == counts["train"] and imgs[0].dtype == np.uint8 and imgs[0].shape[2] == 3
