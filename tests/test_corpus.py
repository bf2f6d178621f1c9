"""Corpus builder: selection, dedupe, split by source, deterministic bytes, manifest (no network, no apt)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shvc_gui.train import corpus as C


# --- test images ----------------------------------------------------------------------------------
def photo_like(seed: int, h: int = 384, w: int = 512) -> Image.Image:
    """Smooth random shapes at several scales + sensor-like noise: passes the photograph rule."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float64)
    for cells, amp in ((4, 60.0), (12, 35.0), (40, 20.0)):
        small = Image.fromarray(rng.uniform(0, 255, (cells, cells * w // h, 3)).astype(np.uint8))
        img += amp / 255 * np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float64)
    img = img / img.max() * 200 + 20 + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))


def smooth_photo(seed: int, h: int = 384, w: int = 512) -> Image.Image:
    """A foggy sky: one slow gradient and faint sensor noise (low entropy, but a photograph)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    img = 150 + 40 * y + 10 * x * np.array([1.0, 0.8, 0.5]) + rng.normal(0, 1.5, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))


def grey_photo(seed: int) -> Image.Image:
    return photo_like(seed).convert("L").convert("RGB")


def flat_images() -> dict[str, Image.Image]:
    h, w = 384, 512
    ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    art = Image.new("RGB", (w, h), (30, 60, 120))
    d = ImageDraw.Draw(art)
    d.ellipse((50, 40, 300, 290), fill=(240, 180, 20))
    d.polygon([(300, 380), (500, 10), (510, 380)], fill=(200, 30, 90))
    return {
        "solid.png": Image.new("RGB", (w, h), (90, 140, 200)),
        "gradient.png": Image.fromarray(ramp.astype(np.uint8)),
        "vector-art.png": art,
        "dithered-gradient.png": Image.fromarray(np.clip(ramp + np.random.default_rng(9).integers(0, 2, (h, w, 3)),
                                                         0, 255).astype(np.uint8)),
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Five photographs (one shipped at two sizes, one again under another name as JPEG, one
    byte-identical copy), a smooth (foggy) and a grey photograph, four flat pictures, an SVG, a
    transparent picture, a tiny photo, a small JPEG (too small once halved) and a picture in a
    folder reserved for evaluation."""
    root = tmp_path_factory.mktemp("sources")
    (root / "nature").mkdir()
    (root / "art").mkdir()
    for i in range(5):
        photo_like(100 + i).save(root / "nature" / f"photo{i}_512x384.png")
    photo_like(100).resize((256, 192), Image.Resampling.BOX).save(root / "nature" / "photo0_256x192.png")
    photo_like(101).resize((480, 360), Image.Resampling.LANCZOS).save(root / "nature" / "copy-of-photo-1.jpg",
                                                                       quality=92)
    (root / "zcopy").mkdir()
    shutil.copy(root / "nature" / "photo2_512x384.png", root / "zcopy" / "photo2-again.png")   # sorts last
    for name, im in flat_images().items():
        im.save(root / "art" / name)
    (root / "art" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    rgba = photo_like(200).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))
    rgba.save(root / "art" / "transparent.png")
    photo_like(300, 100, 120).save(root / "nature" / "tiny.png")
    photo_like(301, 200, 240).save(root / "nature" / "small.jpg", quality=95)     # 200 px -> 100 px
    smooth_photo(400).save(root / "nature" / "fog.png")
    grey_photo(401).save(root / "nature" / "grey.png")
    (root / "skimage" / "data").mkdir(parents=True)
    photo_like(500).save(root / "skimage" / "data" / "astronaut.png")
    return root


def all_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    lines: list[str] = []
    manifest = C.build_from_images(all_paths(sources), out, log=lines.append)
    return out, manifest, lines


def selection(out: Path) -> dict[str, tuple[str, str]]:
    rows = (out / "selection.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["decision", "reason", "package", "path", "identity"]
    return {r.split("\t")[3]: (r.split("\t")[0], r.split("\t")[1]) for r in rows[1:]}


# --- selection and dedupe -------------------------------------------------------------------------
def test_photos_kept_flat_art_dropped(built, sources):
    out, manifest, _ = built
    sel = selection(out)
    assert set(sel) == {p.relative_to(sources).as_posix() for p in all_paths(sources)}   # one row per file
    for name in flat_images():
        decision, reason = sel[f"art/{name}"]
        assert decision == "drop" and reason.split(":")[0] in ("flat", "few colours", "smooth"), (name, reason)
    assert sel["art/logo.svg"] == ("drop", "vector art (SVG)")
    assert sel["art/transparent.png"] == ("drop", "transparent")
    assert sel["nature/tiny.png"][1].startswith("too small")
    assert sel["nature/small.jpg"][1].startswith("too small: output 120x100")     # JPEG: halved at least
    assert sel["skimage/data/astronaut.png"] == ("drop", "reserved for evaluation (never trained on)")
    kept = sorted(f["source"]["path"] for f in manifest["files"])
    assert kept == ["nature/fog.png", "nature/grey.png"] + [f"nature/photo{i}_512x384.png" for i in range(5)]
    assert all(sel[k][0] == "keep" and sel[k][1].startswith("photo:") for k in kept)


def test_duplicates_and_sizes_of_one_picture_give_one_output(built):
    out, manifest, lines = built
    sel = selection(out)
    assert sel["nature/photo0_256x192.png"] == ("drop", "same picture as local:nature/photo0_512x384.png (larger)")
    assert sel["nature/copy-of-photo-1.jpg"] == ("drop", "same picture as local:nature/photo1_512x384.png (larger)")
    assert sel["zcopy/photo2-again.png"][1] == "identical to local:nature/photo2_512x384.png"
    assert any(line.startswith("near-duplicate") and "copy-of-photo-1" in line for line in lines)
    identities = [f["identity"] for f in manifest["files"]]
    assert len(identities) == len(set(identities)) == 7


def test_split_by_source(built):
    out, manifest, _ = built
    split_of = {}
    for f in manifest["files"]:
        assert f["file"].startswith(f["split"] + "/") and (out / f["file"]).exists()
        assert split_of.setdefault(f["identity"], f["split"]) == f["split"]
    # every member of a picture's group (all sizes, the renamed copy) maps to that picture's identity
    sel_rows = [r.split("\t") for r in (out / "selection.tsv").read_text().splitlines()[1:]]
    photo1 = next(f for f in manifest["files"] if f["source"]["path"] == "nature/photo1_512x384.png")
    assert photo1["identity"] == min(photo1["identity"], "local:nature-copy-of-photo-1")
    splits = C.assign_splits(split_of)
    assert splits == split_of
    assert manifest["counts"]["val"] >= 1 and manifest["counts"]["val"] >= 0.1 * len(manifest["files"])
    assert len(sel_rows) == manifest["counts"]["sources"]


def test_assign_splits_is_a_fixed_function_of_identity():
    ids = [f"pkg:picture-{i}" for i in range(200)]
    a = C.assign_splits(ids)
    b = C.assign_splits(list(reversed(ids)))
    assert a == b
    val = [i for i in ids if a[i] == "val"]
    assert 0.10 * len(ids) <= len(val) <= 0.25 * len(ids)
    # adding pictures never moves a hash-chosen validation picture to train
    more = C.assign_splits(ids + [f"pkg:new-{i}" for i in range(50)])
    assert all(more[i] == "val" for i in ids if C._u(i) < C.Rules().val_fraction)
    # tiny corpora still get >= 10 % validation
    assert sum(v == "val" for v in C.assign_splits(["a", "b", "c"]).values()) == 1


# --- bytes, manifest, loader ----------------------------------------------------------------------
def test_rebuild_gives_identical_bytes(built, sources, tmp_path):
    out, _, _ = built
    moved = tmp_path / "elsewhere"                   # same pictures in another folder: same corpus
    shutil.copytree(sources, moved)
    again = tmp_path / "again"
    C.build_from_images(all_paths(moved), again, log=lambda s: None)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert C.corpus_manifest_hash(out) == C.corpus_manifest_hash(again)


def test_rebuild_into_the_same_folder_removes_stale_files(built, sources, tmp_path):
    out = tmp_path / "c"
    C.build_from_images(all_paths(sources), out, log=lambda s: None)
    (out / "train" / "stale.png").write_bytes(b"x")
    (out / "val" / "stale.png").write_bytes(b"x")
    C.build_from_images(all_paths(sources), out, log=lambda s: None)
    assert not (out / "train" / "stale.png").exists() and not (out / "val" / "stale.png").exists()
    assert (out / "manifest.json").read_bytes() == (built[0] / "manifest.json").read_bytes()


def test_manifest_sha256s_and_loader(built):
    out, manifest, _ = built
    text = (out / "manifest.json").read_bytes()
    assert json.loads(text) == manifest
    assert C.corpus_manifest_hash(out) == hashlib.sha256(text).hexdigest()
    assert (out / "manifest.sha256").read_text().split()[0] == C.corpus_manifest_hash(out)
    assert C.verify_corpus(out) == []
    total = 0
    for split in ("train", "val"):
        images = C.load_corpus(out, split, verify=True)
        entries = [f for f in manifest["files"] if f["split"] == split]
        assert len(images) == len(entries) == manifest["counts"][split]
        for img, f in zip(images, entries):
            data = (out / f["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
            assert img.dtype == np.uint8 and img.shape == (f["height"], f["width"], 3)
            assert hashlib.sha256(img.tobytes()).hexdigest() == f["pixels_sha256"]
            assert min(img.shape[:2]) >= 128
            total += f["bytes"]
    assert total == manifest["bytes"]
    for key in ("downsample", "selection", "dedupe", "split", "params"):
        assert key in manifest["rules"]
    f0 = manifest["files"][0]
    assert set(f0["source"]) == {"package", "path", "sha256", "width", "height"}


def test_png_has_no_metadata_chunks(built):
    out, manifest, _ = built
    data = (out / manifest["files"][0]["file"]).read_bytes()
    chunks, pos = [], 8
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8].decode())
        pos += 12 + n
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}


def test_corrupted_file_is_detected(built, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(built[0], out)
    f = built[1]["files"][0]
    p = out / f["file"]
    p.write_bytes(p.read_bytes()[:-20] + bytes(20))
    assert C.verify_corpus(out) == [f"{f['file']}: sha256 differs"]
    with pytest.raises(ValueError, match="sha256"):
        C.load_corpus(out, f["split"], verify=True)


# --- pieces ---------------------------------------------------------------------------------------
def test_downsample_is_an_area_mean_by_at_least_two_for_lossy_sources():
    a = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    out = np.asarray(C.downsample(Image.fromarray(a), C.Rules()))     # lossy by default
    assert out.shape == (2, 3, 3)
    assert out[0, 0, 0] == int(a[:2, :2, 0].mean() + 0.5)               # mean, rounded half up
    rules = C.Rules(max_short_side=100, max_long_side=150)
    assert C.reduce_factor((1000, 300), rules) == 3
    assert C.downsample(Image.new("RGB", (1000, 300)), rules).size == (150, 100)   # 333x100, cropped
    assert C.downsample_size((1000, 300), rules) == (150, 100)


def test_lossless_sources_keep_native_pixels_up_to_the_size_limits():
    r = C.Rules()
    assert (r.max_short_side, r.max_long_side, r.min_factor_lossy, r.min_factor_lossless) == (1024, 1536, 2, 1)
    img = photo_like(7, 300, 400)
    assert np.array_equal(np.asarray(C.downsample(img, r, lossy=False)), np.asarray(img))
    assert C.reduce_factor((400, 300), r, lossy=False) == 1 and C.reduce_factor((400, 300), r) == 2
    assert C.reduce_factor((5120, 2880), r, lossy=False) == 3 == C.reduce_factor((5120, 2880), r)
    assert C.downsample_size((5120, 2880), r, lossy=False) == (1536, 960)
    assert C.downsample_size((2560, 1600), r) == (1280, 800)


def test_a_png_that_was_a_jpeg_counts_as_lossy(tmp_path):
    img = photo_like(8, 384, 512)
    assert C.is_lossy(img, "PNG") [0] is False and C.blockiness(img) < 1.05
    img.save(tmp_path / "a.jpg", quality=60)
    with Image.open(tmp_path / "a.jpg") as im:
        was_jpeg = C.to_rgb(im)[0]
    assert C.blockiness(was_jpeg) > C.Rules().max_blockiness
    assert C.is_lossy(was_jpeg, "PNG")[0] is True                      # saved again as PNG: still lossy
    assert C.is_lossy(img, "JPEG") == (True, "JPEG") and C.is_lossy(img, "WEBP")[0] is True


def test_smooth_and_grey_photographs_are_kept_gradients_and_flat_art_dropped():
    for img in (smooth_photo(1), grey_photo(2), photo_like(3)):
        keep, why = C.is_photo(img, lossy=False)
        assert keep, why
    for name, img in flat_images().items():
        keep, why = C.is_photo(img, lossy=False)
        assert not keep, (name, why)


@pytest.mark.parametrize("pkg", ["opencv-doc", "libjxl-testdata", "python3-skimage", "python-skimage-doc",
                                 "python3-sklearn", "python-sklearn-doc", "python3-sklearn-lib"])
def test_packages_reserved_for_evaluation_are_refused(tmp_path, monkeypatch, pkg):
    monkeypatch.setattr(C, "_run", lambda *a, **k: pytest.fail("apt must not run"))
    with pytest.raises(ValueError, match="reserved for independent evaluation"):
        C.build_corpus(tmp_path / "out", tmp_path / "cache", packages=["gnome-backgrounds", pkg], log=lambda s: None)
    with pytest.raises(ValueError, match="reserved"):
        C.fetch_packages(tmp_path / "cache", [pkg], lambda s: None)
    assert not (tmp_path / "out").exists()
    assert not any(C.is_excluded(p) for p in C.PACKAGES)


def test_reserved_sample_folders_are_dropped():
    for rel in ("usr/lib/python3/dist-packages/skimage/data/astronaut.png",
                "usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
                "usr/share/doc/opencv-doc/examples/data/lena.jpg",
                "usr/share/libjxl/testdata/jxl/flower/flower.png"):
        assert C.is_excluded("some-package", rel), rel
    assert not C.is_excluded("gnome-backgrounds", "usr/share/backgrounds/gnome/adwaita-l.webp")


def test_picture_paths():
    assert C.is_picture_path("tuxpaint-data", "usr/share/tuxpaint/templates/sheep.jpg")
    assert not C.is_picture_path("tuxpaint-data", "usr/share/tuxpaint/starters/frog.png")
    assert C.is_picture_path("mate-backgrounds", "usr/share/backgrounds/mate/nature/Dune.jpg")
    assert not C.is_picture_path("mate-backgrounds", "usr/share/backgrounds/mate/screenshot.png")
    assert not C.is_picture_path("x", "usr/share/icons/a.png")


def test_to_rgb_modes():
    g16 = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    rgb, transparent = C.to_rgb(g16)
    assert rgb.mode == "RGB" and np.asarray(rgb).max() == 255 and not transparent
    p = Image.new("P", (8, 8), 0)
    p.info["transparency"] = 0
    assert C.to_rgb(p)[1]
    opaque = Image.new("RGBA", (8, 8), (1, 2, 3, 255))
    assert C.to_rgb(opaque) [1] is False and np.asarray(C.to_rgb(opaque)[0])[0, 0].tolist() == [1, 2, 3]


def test_identity_of_removes_sizes_and_plasma_layout():
    f = C.identity_of
    assert f("p", "wallpapers/Kay/contents/images/5120x2880.png") == f("p", "wallpapers/Kay/contents/images_dark/1080x1920.png")
    assert f("p", "wallpapers/Kay/contents/screenshot.png") == "p:wallpapers-kay"
    assert f("m", "backgrounds/Elephants_5640x3172.jpg") == f("m", "backgrounds/Elephants.jpg")
    assert f("m", "a/b.jpg") != f("n", "a/b.jpg")


def test_missing_package_is_skipped_with_a_log_line(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(C, "_has_candidate", lambda pkg: False)
    monkeypatch.setattr(C, "_run", lambda cmd, **kw: calls.append(cmd) or
                        __import__("subprocess").CompletedProcess(cmd, 0, "", ""))
    lines: list[str] = []
    assert C.fetch_packages(tmp_path, ["no-such-pkg", "nor-this"], lines.append) == []
    assert calls == [["apt-get", "update", "-qq"]]                       # once, only because of no candidate
    assert "skip no-such-pkg: no apt candidate" in lines and "skip nor-this: no apt candidate" in lines


def test_cached_deb_is_used_without_apt(tmp_path, monkeypatch):
    """A .deb already in the cache is unpacked (dpkg -x) and never downloaded again."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not available")
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text("Package: fake-wallpapers\nVersion: 1.0\nArchitecture: all\n"
                                            "Maintainer: t <t@example.org>\nDescription: test\n")
    (pkg / "usr/share/backgrounds").mkdir(parents=True)
    photo_like(1).save(pkg / "usr/share/backgrounds/one.png")
    photo_like(2).save(pkg / "usr/share/icons-not-a-picture.png")
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    import subprocess
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg),
                    str(cache / "debs" / "fake-wallpapers_1.0_all.deb")], check=True, capture_output=True)
    monkeypatch.setattr(C, "_run", lambda *a, **k: pytest.fail("apt must not run"))
    monkeypatch.setattr(C, "_has_candidate", lambda *a: pytest.fail("apt must not run"))
    out = tmp_path / "corpus"
    manifest = C.build_corpus(out, cache, packages=["fake-wallpapers"], log=lambda s: None)
    assert [f["source"]["path"] for f in manifest["files"]] == ["usr/share/backgrounds/one.png"]
    assert manifest["packages"] == {"fake-wallpapers": "fake-wallpapers_1.0_all.deb"}
    assert selection(out)["usr/share/icons-not-a-picture.png"][0] == "drop"


def test_package_cap_keeps_the_smallest_u(built, sources, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "PACKAGE_CAPS", {"local": 3})
    out = tmp_path / "capped"
    manifest = C.build_from_images(all_paths(sources), out, log=lambda s: None)
    capped = [k for k, (d, why) in selection(out).items() if why.startswith("package cap")]
    assert len(capped) == 4 and all(selection(out)[k][0] == "drop" for k in capped)
    everything = sorted((f["identity"] for f in built[1]["files"]), key=lambda i: (C._u("cap " + i), i))
    assert sorted(f["identity"] for f in manifest["files"]) == sorted(everything[:3])


def test_listed_digital_art_is_dropped_by_path():
    art = C.DIGITAL_ART.search
    assert art("plasma-workspace-wallpapers:usr/share/wallpapers/Kay/contents/images/5120x2880.png")
    assert art("gnome-backgrounds:usr/share/backgrounds/gnome/adwaita-l.webp")
    assert art("mate-backgrounds:usr/share/backgrounds/mate/abstract/Elephants.jpg")
    assert not art("mate-backgrounds:usr/share/backgrounds/mate/nature/Storm.jpg")
    assert not art("plasma-workspace-wallpapers:usr/share/wallpapers/Grey/contents/images/2560x1600.jpg")


# --- native crops of decoded JPEGs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def jpeg_sources(tmp_path_factory) -> Path:
    """Four JPEG photographs (640x480, so halved they still pass) and one PNG photograph."""
    root = tmp_path_factory.mktemp("jpegs")
    for i in range(4):
        photo_like(700 + i, 480, 640).save(root / f"jpeg{i}.jpg", quality=90)
    photo_like(710).save(root / "lossless.png")
    return root


def test_native_crops_are_decoded_pixels_on_the_block_grid(jpeg_sources, tmp_path):
    rules = C.Rules(native_crops=2, native_crop_side=256)
    out = tmp_path / "with"
    manifest = C.build_from_images(all_paths(jpeg_sources), out, rules=rules, log=lambda s: None)
    crops = [f for f in manifest["files"] if "native_crop" in f]
    pictures = [f for f in manifest["files"] if "native_crop" not in f]
    lossy = [f for f in pictures if f["lossy_source"]]
    assert len(lossy) == 4 and len(crops) == 2 * 4              # the PNG gives none
    assert manifest["counts"]["kept"] == len(pictures) == 5
    assert {f["split"] for f in pictures} == {"train", "val"}
    split_of = {f["identity"]: f["split"] for f in pictures}
    boxes = set()
    for f in crops:
        assert f["split"] == ("train" if split_of[f["identity"]] == "train" else "val-native")
        x0, y0, x1, y1 = f["native_crop"]
        assert x0 % C.NATIVE_GRID == 0 and y0 % C.NATIVE_GRID == 0 and (x1 - x0, y1 - y0) == (256, 256)
        with Image.open(jpeg_sources / f["source"]["path"]) as im:
            decoded = np.asarray(im.convert("RGB"))[y0:y1, x0:x1]
        with Image.open(out / f["file"]) as im:
            assert np.array_equal(np.asarray(im), decoded)         # native pixels, not downsampled
        boxes.add((f["identity"], x0, y0))
    assert len(boxes) == len(crops)
    native = C.load_corpus(out, "val-native", verify=True)
    assert len(native) == manifest["counts"]["val-native"] == sum(f["split"] == "val-native" for f in crops) > 0
    assert C.verify_corpus(out) == [] and "native_crops" in manifest["rules"]

    # without native crops: the same train and val pictures, byte for byte, and no trace of the rule
    plain = tmp_path / "without"
    m0 = C.build_from_images(all_paths(jpeg_sources), plain, log=lambda s: None)
    assert [f for f in manifest["files"] if "native_crop" not in f] == m0["files"]
    assert "native_crops" not in m0["rules"] and "native_crops" not in m0["rules"]["params"]
    assert "val-native" not in m0["counts"] and not (plain / "val-native").exists()
    with pytest.raises(ValueError, match="split must be"):
        C.load_corpus(plain, "test")
