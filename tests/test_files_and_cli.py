"""The .shvc container, any image size and mode, metadata, bad input, the golden file and the CLI."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shvc_gui import cli
from shvc_gui.core import codec, container, image_io, tiling
from shvc_gui.core.errors import FormatError, IntegrityError, WeightsError
from shvc_gui.core.model.testing import synthetic_photo

DATA = __import__("pathlib").Path(__file__).parent / "data"


def _rgb(h, w, seed=0):
    return synthetic_photo(h, w, seed=seed)


def _round_trip(pil, model, **meta):
    img = image_io.LoadedImage(pil, **meta)
    data, res = codec.compress_image(img, model=model)
    back, header = codec.decompress_bytes(data, model=model)
    return img, back, res, header


@pytest.mark.parametrize("variant", ["arib", "shvc", "det"])
def test_small_images_are_coded_in_small_tiles(variant, trained_model, tiny_det_model):
    """An image that fits in 32x32 is coded in a 32x32 tile (a quarter of the network work of a
    padded 64x64 one); one pixel larger, and it takes the model's own 64x64 tiles. The det variant
    codes every image whole (format version 3: no patches)."""
    model = tiny_det_model if variant == "det" else trained_model
    for (h, w), patch in (((32, 20), 32), ((7, 1), 32), ((33, 20), 64)):
        pil = Image.fromarray(_rgb(h, w, seed=w))
        data, _ = codec.compress_image(image_io.LoadedImage(pil), model=model, variant=variant)
        back, header = codec.decompress_bytes(data, model=model)
        assert np.array_equal(np.asarray(back.pil), np.asarray(pil))
        assert (header.patch, header.n_patches) == ((0, 0) if variant == "det" else (patch, header.n_patches))
    assert model.hp.patch == 64                               # the shared model itself is untouched


@pytest.mark.parametrize("h,w", [(1, 1), (1, 300), (300, 1), (2, 3), (63, 65), (200, 137),
                                 pytest.param(2049, 2051, marks=pytest.mark.slow)])
def test_whole_image_det_round_trips_at_any_size(h, w, trained_det_model):
    """det files (version 3 on): the whole image in one pyramid, odd sides, lines, more than 4 MP."""
    pil = Image.fromarray(_rgb(h, w, seed=h + w))
    _, back, res, header = _round_trip(pil, trained_det_model)
    assert np.array_equal(np.asarray(back.pil), np.asarray(pil))
    assert header.version == container.VERSION and header.variant == "det" and header.n_patches == 0
    assert res.bits_map.shape == (h, w) and (res.bits_map > 0).all()       # every pixel, no grid
    assert res.bits_map.sum(dtype=np.float64) == pytest.approx(header.neg_elbo_bits, rel=1e-5)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 300), (63, 65), (200, 137), (257, 513)])
def test_odd_sizes_round_trip(h, w, trained_model):
    pil = Image.fromarray(_rgb(h, w, seed=h))
    _, back, res, header = _round_trip(pil, trained_model)
    assert np.array_equal(np.asarray(back.pil), np.asarray(pil))
    assert res.bits_map.shape == (h, w) and header.n_patches == np.prod(tiling.grid_of(h, w))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1", "CMYK"])
def test_every_mode_round_trips(mode, trained_model):
    base = Image.fromarray(_rgb(40, 45, seed=3))
    if mode == "RGBA":
        pil = Image.fromarray(np.dstack([np.asarray(base), np.arange(40 * 45, dtype=np.uint8).reshape(40, 45)]))
    elif mode == "I;16":
        pil = Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257))
        assert pil.mode == "I;16"
    else:
        pil = base.convert(mode)
    _, back, res, _ = _round_trip(pil, trained_model)
    assert back.pil.mode == pil.mode
    assert np.array_equal(np.asarray(back.pil), np.asarray(pil))
    assert res.method == {"RGB": image_io.METHOD_MODEL, "RGBA": image_io.METHOD_MIXED}.get(mode, image_io.METHOD_FALLBACK)


def test_16bit_rgb_png_keeps_all_bits(tmp_path, trained_model):
    import imagecodecs
    arr = (np.random.default_rng(0).integers(0, 65536, (20, 30, 3))).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(imagecodecs.png_encode(arr))
    r = codec.compress_file(tmp_path / "deep.png", tmp_path / "deep.shvc", model=trained_model)
    assert r.method == image_io.METHOD_FALLBACK
    codec.decompress_file(tmp_path / "deep.shvc", tmp_path / "out.png", model=trained_model)
    assert np.array_equal(imagecodecs.png_decode((tmp_path / "out.png").read_bytes()), arr)


def test_metadata_kept_byte_for_byte(tmp_path, trained_model):
    src = tmp_path / "meta.png"
    exif = Image.Exif()
    exif[0x010F] = "shvc camera"
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_itxt("Comment", "kept")
    Image.fromarray(_rgb(30, 40)).save(src, icc_profile=b"icc-bytes-\x00\x01", exif=exif.tobytes(), pnginfo=info)
    codec.compress_file(src, tmp_path / "meta.shvc", model=trained_model)
    codec.decompress_file(tmp_path / "meta.shvc", tmp_path / "back.png", model=trained_model)
    a, b = image_io.load_image(src), image_io.load_image(tmp_path / "back.png")
    assert b.icc == a.icc == b"icc-bytes-\x00\x01"
    assert b.exif == a.exif and b.text.get("Comment") == "kept"


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_golden_file_still_decodes(version, golden_model_of):
    """Files of every format version keep decoding (1: whole tables; 2: the rANS lanes; 3: det
    images whole, golden-v3 is one; 4: with a colour list, golden-v4 holds 48 colours; 5: scale
    offsets per scale bucket and shared ones, 8192 sub-pixels a lane: golden-v5 has 32 lanes; 6: a
    colour list with its colours' counts, golden-v6 holds 48 dithered colours)."""
    model = golden_model_of(version)
    img, header = codec.decompress_bytes((DATA / f"golden-v{version}.shvc").read_bytes(), model=model)
    orig = image_io.load_image(DATA / f"golden-v{version}.png")
    assert np.array_equal(np.asarray(img.pil), np.asarray(orig.pil))
    assert img.icc == orig.icc and img.text == orig.text
    assert header.variant == ("det" if version >= 3 else "arib") and header.version == version


def test_golden_file_of_this_version_is_made_the_same_way_again(golden_model):
    """Encoding is deterministic: the current version's golden file is reproduced byte for byte."""
    data, _ = codec.compress_image(image_io.load_image(DATA / f"golden-v{container.VERSION}.png"), model=golden_model)
    assert data == _golden()


def test_version_2_det_files_still_decode(tiny_det_model):
    """A det file of version 2 (patches) decodes after version 3 made det images whole."""
    from shvc_gui.core.entropy import bitsback
    rgb = _rgb(70, 45, seed=4)
    img = image_io.LoadedImage(Image.fromarray(rgb))
    patches, valid, grid = tiling.to_patches(rgb, 64)
    enc = bitsback.encode_patches(tiny_det_model, patches, valid, "det", group_size=4, version=2)
    header = container.Header(45, 70, "RGB", "model", tiny_det_model.name, tiny_det_model.sha256, "det", 64, 4,
                              len(patches), enc.report.total_bits, 0, enc.report.neg_elbo_bits,
                              image_io.pixel_checksum(img), version=2)
    back, h = codec.decompress_bytes(container.write_container(header, [enc.payload, b""]), model=tiny_det_model)
    assert h.version == 2 and np.array_equal(np.asarray(back.pil), rgb)


def _golden():
    return (DATA / f"golden-v{container.VERSION}.shvc").read_bytes()


@pytest.mark.parametrize("word", [3, 200, -1, -40])
def test_damaged_payload_with_valid_checksums_is_reported(word, tmp_path, golden_model):
    """A changed word in the coded payload (CRCs recomputed, so only the coder can notice) ends in a
    one-sentence error and no output file. Words count from the stream table: an offset of a scale
    bucket that no sub-pixel falls in changes nothing (tests/test_colours.py damages the offsets)."""
    from shvc_gui.core.entropy import payload as pl
    from shvc_gui.core.entropy.pyramid import tuned_steps
    header, streams = container.read_container(_golden())
    table = (len(streams[0]) - len(pl.split_tuning(streams[0], tuned_steps(header.height, header.width),
                                                   header.version)[-1])) // 4
    payload = np.frombuffer(streams[0], dtype="<u4").copy()
    payload[table + word if word >= 0 else word] ^= 0x00100400
    bad = tmp_path / "bad.shvc"
    bad.write_bytes(container.write_container(header, [payload.tobytes(), streams[1]]))
    with pytest.raises((FormatError, IntegrityError)):
        codec.decompress_file(bad, tmp_path / "out.png", model=golden_model)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("damage,message", [
    (lambda d: d[:3], "not a .shvc file"),
    (lambda d: b"GIF89a" + d[6:], "not a .shvc file"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"x", "corrupt"),
    (lambda d: d[:20] + bytes([d[20] ^ 0x40]) + d[21:], "corrupt"),
    (lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:], "corrupt"),
    (lambda d: d[:4] + b"\x09\x00" + d[6:], "newer"),
])
def test_bad_files_give_one_sentence(damage, message, golden_model):
    with pytest.raises(FormatError, match=message):
        codec.decompress_bytes(damage(_golden()), model=golden_model)


def test_missing_weights_and_huge_header():
    with pytest.raises(WeightsError, match="not installed"):
        codec.decompress_bytes(_golden(), model=None)
    h = container.Header(1 << 20, 1 << 20, "RGB", "model")
    with pytest.raises(FormatError, match="beyond"):
        container.read_header(container.write_container(h, []))


def test_pixel_crc_mismatch_writes_nothing(tmp_path, golden_model):
    header, streams = container.read_container(_golden())
    header.pixel_crc ^= 1
    bad = tmp_path / "bad.shvc"
    bad.write_bytes(container.write_container(header, streams))
    with pytest.raises(IntegrityError):
        codec.decompress_file(bad, tmp_path / "out.png", model=golden_model)
    assert not (tmp_path / "out.png").exists()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 70), w=st.integers(1, 70), mode=st.sampled_from(["RGB", "RGBA", "L", "LA", "P"]),
       seed=st.integers(0, 1000))
def test_random_small_images_round_trip(h, w, mode, seed, trained_model):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
    pil = Image.fromarray(arr, "RGBA").convert(mode) if mode != "RGBA" else Image.fromarray(arr, "RGBA")
    _, back, _, _ = _round_trip(pil, trained_model)
    assert np.array_equal(np.asarray(back.pil), np.asarray(pil))


# --- CLI -------------------------------------------------------------------------------------------
@pytest.fixture
def workdir(tmp_path):
    Image.fromarray(_rgb(50, 70, seed=1)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(_rgb(20, 30, seed=2)).save(tmp_path / "sub" / "b.jpg", quality=95)
    return tmp_path


def W():
    return ["--weights", str(DATA / "trained-tiny.pt")]


def test_cli_compress_decompress_no_overwrite(workdir, capsys):
    assert cli.main(["compress", str(workdir)] + W()) == 0
    assert (workdir / "a.shvc").exists() and (workdir / "sub" / "b.shvc").exists()
    before = (workdir / "a.shvc").read_bytes()
    assert cli.main(["compress", str(workdir / "a.png")] + W()) == 1
    assert "already exists" in capsys.readouterr().err
    assert (workdir / "a.shvc").read_bytes() == before
    assert cli.main(["compress", str(workdir / "a.png"), "--force"] + W()) == 0
    assert cli.main(["decompress", str(workdir / "a.shvc"), "-o", str(workdir / "a2.png")] + W()) == 0
    assert np.array_equal(np.asarray(Image.open(workdir / "a2.png")), np.asarray(Image.open(workdir / "a.png")))
    assert not list(workdir.glob(".*part"))


def test_cli_bad_inputs_exit_codes(workdir, capsys):
    (workdir / "x.shvc").write_bytes(b"definitely not")
    (workdir / "t.shvc").write_bytes(_golden()[:40])
    assert cli.main(["decompress", str(workdir / "x.shvc"), str(workdir / "t.shvc")] + W()) == 1
    err = capsys.readouterr().err
    assert "not a .shvc file" in err and "truncated" in err and "Traceback" not in err
    assert cli.main(["info", str(workdir / "x.shvc")]) == 1
    assert cli.main(["frobnicate"]) == 2
    (workdir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert cli.main(["compress", str(workdir / "broken.png")] + W()) == 1
    assert "Traceback" not in capsys.readouterr().err
    # an output folder under a regular file cannot be made, by root either
    code = cli.main(["compress", str(workdir / "a.png"), "--out-dir", str(workdir / "a.png" / "sub")] + W())
    assert code == 1 and "Traceback" not in capsys.readouterr().err


def test_cli_info_json_and_bench_json(workdir, capsys):
    assert cli.main(["compress", str(workdir / "a.png")] + W()) == 0
    capsys.readouterr()
    assert cli.main(["info", "--json", str(workdir / "a.shvc")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 70 and info["height"] == 50 and info["variant"] == "arib" and info["bytes"] > 0
    out = workdir / "bench.json"
    assert cli.main(["bench", str(workdir / "a.png"), "--codecs", "shvc,png,webp,jxl,flif", "--json", str(out),
                     "--quiet"] + W()) == 0
    rep = json.loads(out.read_text())
    assert set(rep) == {"images", "total"} and rep["images"][0]["dims"] == [50, 70, 3]
    assert set(rep["images"][0]["bpd"]) == {"shvc", "png", "webp", "jxl", "flif"}
    assert rep["total"]["bpd"]["png"] > 0 and "encode" in rep["images"][0]["seconds"]["shvc"]
