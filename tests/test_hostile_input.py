"""Issue 17: hostile files and careless input found by fuzzing the command line.

Each test names the defect it covers; each failed before its fix."""

import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from shvc_gui import cli
from shvc_gui.core import codec, container, image_io
from shvc_gui.core.entropy import bitsback, whole
from shvc_gui.core.entropy import payload as layout
from shvc_gui.core.errors import FormatError, IntegrityError
from shvc_gui.core.model.testing import synthetic_photo

DATA = Path(__file__).parent / "data"
WEIGHTS = ["--weights", str(DATA / "trained-tiny.pt")]
ROOT = Path(__file__).parent.parent


def _golden(version=2) -> bytes:
    return (DATA / f"golden-v{version}.shvc").read_bytes()


def _rewrite(data: bytes, streams=None, **fields) -> bytes:
    """The file with header fields changed and every CRC recomputed (only deeper checks can notice)."""
    header, old = container.read_container(data)
    return container.write_container(replace(header, **fields), old if streams is None else streams)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _run(code: str, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHVC_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


# --- 2: an output folder that cannot be created -----------------------------------------------------
def test_out_dir_that_cannot_be_created_is_one_error_line(tmp_path, capsys):
    Image.fromarray(synthetic_photo(8, 8)).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    code = cli.main(["compress", str(tmp_path / "a.png"), "--out-dir", str(tmp_path / "file" / "sub")] + WEIGHTS)
    assert code == 1
    assert "cannot be created" in _one_line(capsys.readouterr().err)


# --- 3: the payload must be able to hold what the header claims --------------------------------------
@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the payload was decoded although the file could be refused at once")
    monkeypatch.setattr(bitsback, "decode_patches", refuse)
    monkeypatch.setattr(whole, "decode_image", refuse)


def test_claimed_size_beyond_the_payload_fails_at_once(trained_model, no_decoding):
    """A version-2 file whose header claims 1024x1024 over a 288x160 payload: the lane count the
    encoder would have written differs, so nothing is decoded."""
    bad = _rewrite(_golden(), width=1024, height=1024, n_patches=256)
    with pytest.raises(FormatError, match="lane count"):
        codec.decompress_bytes(bad, model=trained_model)


@pytest.mark.parametrize("size", [(1024, 1024), (4096, 2048)])
def test_version_1_payload_running_out_fails_at_once(size, trained_model):
    """Version 1 (whole-table coder, no lanes): the decoder stops as soon as the stream is used up
    (or it reaches the cut seed), instead of decoding garbage for the claimed size."""
    w, h = size
    bad = _rewrite(_golden(1), width=w, height=h, n_patches=(w // 64) * (h // 64))
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match="corrupt"):
        codec.decompress_bytes(bad, model=trained_model)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("version", [1, 2])
def test_zero_seed_words_do_not_feed_a_claimed_size(version, trained_model):
    """The cut seed comes back as zero words under the stream; with a larger claimed size the seed
    may be as long as the pop bound of all its patches. A decoder must stop at the cut instead of
    decoding those zeros (and, in version 2, must find the lanes the encoder would have used)."""
    w = h = 1024
    header, (payload, fallback) = container.read_container(_golden(version))
    words = np.frombuffer(payload, "<u4").copy()
    words[1 + (version >= 2)] = layout.pop_bound(trained_model.hp, 256, header.variant)
    if version >= 2:
        words[1] = 512                                        # lanes_for(3 * 1024 * 1024)
    bad = container.write_container(replace(header, width=w, height=h, n_patches=256), [words.tobytes(), fallback])
    t0 = time.perf_counter()
    with pytest.raises(FormatError, match="corrupt"):
        codec.decompress_bytes(bad, model=trained_model)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("lanes", [1, 5, 31, 64, 4096, 1 << 31])
def test_lane_counts_the_encoder_never_writes_are_corrupt(lanes, trained_model, no_decoding):
    header, (payload, fallback) = container.read_container(_golden())
    bad = payload[:4] + struct.pack("<I", lanes) + payload[8:]
    with pytest.raises(FormatError, match="lane count"):
        codec.decompress_bytes(container.write_container(header, [bad, fallback]), model=trained_model)


@pytest.mark.parametrize("damage,message", [
    (lambda p, f: [struct.pack("<I", 2) + p[4:], f], "stream count"),
    (lambda p, f: [p, b"SFB1 unexpected"], "do not fit its coding method"),
    (lambda p, f: [b"", f], "do not fit its coding method"),
    (lambda p, f: [p[:12], f], "truncated"),
    (lambda p, f: [p + b"\0\0\0\0", f], "do not add up"),
    (lambda p, f: [p[:8] + struct.pack("<I", 1 << 30) + p[12:], f], "seed length"),
])
def test_impossible_payload_tables_fail_before_decoding(damage, message, trained_model, no_decoding):
    header, (payload, fallback) = container.read_container(_golden())
    with pytest.raises(FormatError, match=message):
        codec.decompress_bytes(container.write_container(header, damage(payload, fallback)), model=trained_model)


# --- issue 20: version 3 (det images whole) -------------------------------------------------------------
def test_version_3_claimed_size_beyond_the_payload_fails_at_once(trained_det_model, no_decoding):
    """The whole-image payload has no patches: the claimed size is held to the stream count and lanes."""
    for w, h in [(1024, 1024), (4167, 2880)]:
        with pytest.raises(FormatError, match="stream count|lane count"):
            codec.decompress_bytes(_rewrite(_golden(3), width=w, height=h), model=trained_det_model)


@pytest.mark.parametrize("lanes", [0, 1, 31, 64, 4096, 1 << 31])
def test_version_3_lane_counts_the_encoder_never_writes_are_corrupt(lanes, trained_det_model, no_decoding):
    header, (payload, fallback) = container.read_container(_golden(3))
    bad = payload[:4] + struct.pack("<I", lanes) + payload[8:]
    with pytest.raises(FormatError, match="lane count"):
        codec.decompress_bytes(container.write_container(header, [bad, fallback]), model=trained_det_model)


@pytest.mark.parametrize("damage,message", [
    (lambda p, f: [struct.pack("<I", 2) + p[4:], f], "stream count"),
    (lambda p, f: [struct.pack("<I", 0) + p[4:], f], "stream count"),
    (lambda p, f: [p, b"SFB1 unexpected"], "do not fit its coding method"),
    (lambda p, f: [b"", f], "do not fit its coding method"),
    (lambda p, f: [p[:12], f], "truncated"),
    (lambda p, f: [p + b"\0\0\0\0", f], "do not add up"),
    (lambda p, f: [p[:8] + struct.pack("<I", 1) + p[12:], f], "seed length"),      # det pops nothing
    (lambda p, f: [p[:12] + struct.pack("<I", 3) + p[16:], f], "do not add up"),
])
def test_version_3_impossible_payload_tables_fail_before_decoding(damage, message, trained_det_model, no_decoding):
    header, (payload, fallback) = container.read_container(_golden(3))
    with pytest.raises(FormatError, match=message):
        codec.decompress_bytes(container.write_container(header, damage(payload, fallback)), model=trained_det_model)


@pytest.mark.parametrize("fields", [dict(patch=64), dict(group_size=64), dict(n_patches=45),
                                    dict(version=2), dict(version=1)])
def test_version_3_det_file_with_a_patch_layout_or_relabelled_is_corrupt(fields, trained_det_model, no_decoding):
    """A whole-image file claims no patches; relabelled as an older version (the version has no CRC)
    its payload is refused before decoding, not read as patches."""
    with pytest.raises(FormatError, match="corrupt"):
        codec.decompress_bytes(_rewrite(_golden(3), **fields), model=trained_det_model)


def test_latent_payloads_are_the_same_in_versions_2_and_3(trained_model):
    """Only det payloads changed in version 3: a version-2 arib file relabelled version 3 decodes."""
    img, header = codec.decompress_bytes(_rewrite(_golden(2), version=3), model=trained_model)
    assert header.version == 3 and img.same_pixels(image_io.load_image(DATA / "golden-v2.png"))


def test_version_3_damaged_words_are_reported(trained_det_model):
    header, (payload, fallback) = container.read_container(_golden(3))
    words = np.frombuffer(payload, "<u4")
    for i in [4, 5, len(words) // 2, len(words) - 1, len(words) - 70]:
        bad = words.copy()
        bad[i] ^= 0x00100400
        with pytest.raises((FormatError, IntegrityError)):
            codec.decompress_bytes(container.write_container(header, [bad.tobytes(), fallback]),
                                   model=trained_det_model)


# --- 4: the embedded stream's own size is read before it is decoded ----------------------------------
@pytest.mark.parametrize("encode,name", [(imagecodecs.png_encode, "png_decode"),
                                         (lambda a: imagecodecs.jpegxl_encode(a, lossless=True), "jpegxl_decode")])
def test_embedded_stream_larger_than_the_header_is_refused_unread(encode, name, monkeypatch):
    big = np.zeros((300, 400), np.uint8)
    codec_id = image_io.FB_PNG if name == "png_decode" else image_io.FB_JPEGXL
    head = image_io.FALLBACK_MAGIC + struct.pack("<BB", codec_id, 1) + b"L" + struct.pack("<IIBH", 10, 10, 0, 0)
    bomb = head + encode(big)
    calls = []
    monkeypatch.setattr(imagecodecs, name, lambda *a, **k: calls.append(1))
    with pytest.raises(FormatError, match="corrupt.*400x300|corrupt.*size differs"):
        image_io.decode_fallback(bomb)
    assert not calls
    good = head + encode(np.zeros((10, 10), np.uint8))
    monkeypatch.undo()
    assert image_io.decode_fallback(good).pixels.shape == (10, 10, 1)


# --- 5: one command never overwrites its own output ----------------------------------------------------
@pytest.fixture
def twins(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(synthetic_photo(8, 8, seed=len(sub))).save(tmp_path / sub / "x.png")
    Image.fromarray(synthetic_photo(8, 8)).save(tmp_path / "y.png")
    Image.fromarray(synthetic_photo(8, 8)).save(tmp_path / "y.bmp")
    return tmp_path


@pytest.mark.parametrize("names,out_dir", [(["a/x.png", "b/x.png"], True), (["y.png", "y.bmp"], False),
                                           (["y.png", "y.bmp"], True)])
def test_name_clashes_within_one_command_are_refused(twins, names, out_dir, capsys):
    args = ["compress", *[str(twins / n) for n in names], "--force"] + WEIGHTS
    if out_dir:
        args += ["--out-dir", str(twins / "D")]
    assert cli.main(args) == 2
    assert "would all be written to" in _one_line(capsys.readouterr().err)
    assert not list(twins.rglob("*.shvc"))


def test_folders_keep_their_layout_under_out_dir(twins, capsys):
    (twins / "y.bmp").unlink()
    assert cli.main(["compress", str(twins / "a"), str(twins / "b"), "--out-dir", str(twins / "D")] + WEIGHTS) == 2
    # a/ and b/ are two folders named directly: x.png of each lands at D/x.shvc -> refused as a clash
    assert "would all be written" in capsys.readouterr().err
    assert cli.main(["compress", str(twins), "--out-dir", str(twins / "D")] + WEIGHTS) == 0
    assert {p.relative_to(twins / "D").as_posix() for p in (twins / "D").rglob("*.shvc")} == {"a/x.shvc", "b/x.shvc", "y.shvc"}


# --- 6: signals --------------------------------------------------------------------------------------
def test_sigterm_during_the_final_write_leaves_no_temporary_file(tmp_path):
    Image.fromarray(synthetic_photo(8, 8)).save(tmp_path / "x.png")
    r = _run(f"""
import os, signal, sys
from shvc_gui import cli
real = os.fsync
def fsync(fd):
    os.kill(os.getpid(), signal.SIGTERM)
    real(fd)
os.fsync = fsync
sys.exit(cli.main(["compress", {str(tmp_path / "x.png")!r}, "--weights", {str(DATA / "trained-tiny.pt")!r}]))
""")
    assert r.returncode == 143, r.stderr
    assert "terminated" in _one_line(r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_ctrl_c_while_the_model_stack_loads_exits_130_without_traceback(tmp_path):
    Image.fromarray(synthetic_photo(8, 8)).save(tmp_path / "x.png")
    r = _run(f"""
import builtins, sys
from shvc_gui import cli
real = builtins.__import__
def imp(name, *a, **k):
    if name.split(".")[0] == "torch":
        raise KeyboardInterrupt
    return real(name, *a, **k)
builtins.__import__ = imp
sys.exit(cli.main(["compress", {str(tmp_path / "x.png")!r}]))
""")
    assert r.returncode == 130, r.stderr
    assert "interrupted" in _one_line(r.stderr)


# --- 8: transparency and palette mode are covered by a checksum ------------------------------------------
def _palette_image(transparency):
    pil = Image.fromarray(synthetic_photo(12, 10, seed=4)).quantize(16)
    return image_io.LoadedImage(pil, info={"transparency": transparency})


@pytest.mark.parametrize("transparency,changed", [(bytes(range(0, 160, 10)), bytes(range(1, 161, 10))), (3, 4)])
def test_changed_transparency_is_an_integrity_error(transparency, changed, trained_model):
    data, _ = codec.compress_image(_palette_image(transparency), model=trained_model)
    back, header = codec.decompress_bytes(data, model=trained_model)
    assert back.info["transparency"] == transparency and header.rebuild_crc is not None
    with pytest.raises(IntegrityError):
        codec.decompress_bytes(_rewrite(data, info={"transparency": changed}), model=trained_model)


def test_changed_palette_mode_is_an_integrity_error(trained_model):
    img = _palette_image(5)
    data, _ = codec.compress_image(img, model=trained_model)
    header, (payload, fallback) = container.read_container(data)
    swapped = image_io.encode_fallback(img.pixels, "P", img.palette[:len(img.palette) // 12 * 12], "RGBA")
    with pytest.raises(IntegrityError):
        codec.decompress_bytes(container.write_container(header, [payload, swapped]), model=trained_model)


def test_files_without_the_rebuild_checksum_still_decode(trained_model):
    """Files written before the checksum block (kind 5) existed keep decoding."""
    img = _palette_image(bytes([0, 255]))
    data, _ = codec.compress_image(img, model=trained_model)
    back, header = codec.decompress_bytes(_rewrite(data, rebuild_crc=None), model=trained_model)
    assert back.same_pixels(img) and back.info == img.info and header.rebuild_crc is None
    rgb, _ = codec.compress_image(image_io.LoadedImage(synthetic_photo(9, 9)), model=trained_model)
    assert container.read_header(rgb).rebuild_crc is None                 # nothing extra to cover


# --- 9: info --json, -o FOLDER -------------------------------------------------------------------------
def test_info_json_of_several_files_is_one_array(tmp_path, capsys):
    assert cli.main(["info", "--json", str(DATA / "golden-v1.shvc"), str(DATA / "golden-v2.shvc")]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["format_version"] for d in docs] == [1, 2]
    (tmp_path / "bad.shvc").write_bytes(b"nope")
    assert cli.main(["info", "--json", str(DATA / "golden-v2.shvc"), str(tmp_path / "bad.shvc")]) == 1
    out = capsys.readouterr()
    assert len(json.loads(out.out)) == 1 and "not a .shvc file" in _one_line(out.err)


def test_output_naming_an_existing_folder_writes_inside_it(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert cli.main(["decompress", str(DATA / "golden-v2.shvc"), "-o", str(tmp_path / "out")] + WEIGHTS) == 0
    back = image_io.load_image(tmp_path / "out" / "golden-v2.png")
    assert back.same_pixels(image_io.load_image(DATA / "golden-v2.png"))
    assert cli.main(["compress", str(tmp_path / "out" / "golden-v2.png"), "-o", str(tmp_path / "out")] + WEIGHTS) == 0
    assert (tmp_path / "out" / "golden-v2.shvc").exists()
    assert cli.main(["decompress", str(DATA / "golden-v2.shvc"), "-o", str(tmp_path / "out")] + WEIGHTS) == 1
    assert "already exists" in _one_line(capsys.readouterr().err)


# --- 10: reading a header does not load the model stack -----------------------------------------------
def test_info_does_not_import_torch():
    r = _run(f"""
import sys
from shvc_gui import cli
from shvc_gui.core import codec
assert cli.main(["info", {str(DATA / "golden-v2.shvc")!r}]) == 0
codec.describe(codec.read_header({str(DATA / "golden-v1.shvc")!r}))
print("torch" in sys.modules)
""")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "False", r.stderr


def test_stream_counts_follow_the_rule_of_each_version():
    """Version 1 wrote one sub-stream per 4 groups, version 2 one per 12 M sub-pixels: a file of
    either keeps its own rule (a 2048x2048 version-1 image had 4 sub-streams)."""
    h1 = container.Header(2048, 2048, "RGB", "model", variant="arib", patch=64, group_size=64, n_patches=1024,
                          version=1)
    assert codec._expected_streams(h1, 3 * 2048 * 2048) == 4
    assert codec._expected_streams(replace(h1, version=2), 3 * 2048 * 2048) == 2


@pytest.mark.parametrize("method", ["fallback", "mixed"])
def test_embedded_stream_larger_than_the_file_is_refused_unread(method, trained_model, monkeypatch):
    """Issue 17.4, one level up: the embedded stream's own header (and its PNG) agree on 400x300,
    the file says 10x10: refused before the PNG is decoded."""
    if method == "fallback":
        data, _ = codec.compress_image(image_io.LoadedImage(np.zeros((10, 10, 1), np.uint8), "L"), model=trained_model)
        big = image_io.encode_fallback(np.zeros((300, 400, 1), np.uint8), "L")
    else:
        data, _ = codec.compress_image(image_io.LoadedImage(np.zeros((10, 10, 4), np.uint8), "RGBA"),
                                       model=trained_model)
        big = image_io.encode_fallback(np.zeros((300, 400, 1), np.uint8), "L")
    header, (payload, _) = container.read_container(data)
    calls = []
    monkeypatch.setattr(imagecodecs, "png_decode", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(imagecodecs, "jpegxl_decode", lambda *a, **k: calls.append(1))
    with pytest.raises(FormatError, match="400x300"):
        codec.decompress_bytes(container.write_container(header, [payload, big]), model=trained_model)
    assert not calls
