"""The .shvc container: round trips, and every kind of bad file gives a FormatError with one sentence."""

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shvc_gui.core import container as C
from shvc_gui.core.errors import FormatError

SHA = "ab" * 32


def full_header(**kw):
    h = C.Header(width=200, height=137, mode="RGBA", method=C.METHOD_MIXED, model_id="shvc-vae-w32",
                 weights_sha256=SHA, variant="arib", patch=64, group_size=64, n_patches=12, total_bits=123456,
                 initial_bits=17, neg_elbo_bits=120000.25, pixel_crc=0xDEADBEEF, source_format="PNG", bit_depth=8,
                 icc=b"\x00icc\xffprofile", exif=b"Exif\x00\x00MM\x00*", text={"Title": "t\u00e9st", "Comment": ""},
                 info={"dpi": (300.0, 300.0), "gamma": 0.45455, "srgb": 0})
    for k, v in kw.items():
        setattr(h, k, v)
    return h


STREAMS = [b"ans payload \x00\x01" * 10, b"", b"fallback"]


def small_file():
    return C.write_container(full_header(), STREAMS)


def test_round_trip_every_field():
    h = full_header()
    data = C.write_container(h, STREAMS)
    back, streams = C.read_container(data)
    assert streams == STREAMS and back == h and back.version == C.VERSION
    assert C.read_header(data) == h
    assert C.read_header(data[:len(data) - sum(map(len, STREAMS)) - 4 - 12 * 3]) == h   # header alone suffices
    assert back.channels == 4 and back.uses_model and back.info["srgb"] == 0
    p = full_header(mode="P", method=C.METHOD_FALLBACK, info={"transparency": b"\x00\x80\xff"}, rebuild_crc=7)
    back = C.read_header(C.write_container(p, []))
    assert back == p and back.info["transparency"] == b"\x00\x80\xff" and back.rebuild_crc == 7


def test_minimal_header_and_no_streams():
    h = C.Header(1, 1, "L", C.METHOD_FALLBACK)
    back, streams = C.read_container(C.write_container(h, []))
    assert back == h and streams == [] and not back.uses_model and back.weights_sha256 == ""


def test_layout_starts_as_documented():
    data = small_file()
    magic, version, flags, hlen = struct.unpack_from("<4sHHI", data)
    assert (magic, version, flags) == (b"SHVC", C.VERSION, 0)
    # a new format version comes with its own golden file (tests/test_files_and_cli.py decodes each)
    assert (Path(__file__).parent / "data" / f"golden-v{C.VERSION}.shvc").is_file()
    assert struct.unpack_from("<I", data, 12 + hlen)[0] == zlib.crc32(data[12:12 + hlen])
    assert struct.unpack_from("<II", data, 12) == (200, 137)
    (n,) = struct.unpack_from("<I", data, 16 + hlen)
    assert n == 3 and struct.unpack_from("<QI", data, 20 + hlen) == (len(STREAMS[0]), zlib.crc32(STREAMS[0]))


def test_read_header_file(tmp_path):
    path = tmp_path / "a.shvc"
    path.write_bytes(small_file())
    assert C.read_header_file(path) == full_header()
    path.write_bytes(small_file()[:30])
    with pytest.raises(FormatError, match="truncated"):
        C.read_header_file(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(FormatError, match="not a .shvc file"):
        C.read_header_file(path)


# --- bad files ----------------------------------------------------------------------------------
def _one_sentence(err):
    text = str(err)
    assert text[0].isupper() and text.endswith(".") and "\n" not in text
    return text


@pytest.mark.parametrize("data,message", [
    (b"", "not a .shvc file"),
    (b"SHV", "not a .shvc file"),
    (b"GIF89a" + b"\0" * 40, "not a .shvc file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a .shvc file"),
    (b"shvc" + b"\0" * 40, "not a .shvc file"),
])
def test_foreign_files(data, message):
    with pytest.raises(FormatError, match=message) as info:
        C.read_container(data)
    _one_sentence(info.value)


def test_every_truncation_is_reported():
    data = small_file()
    for n in range(len(data)):
        with pytest.raises(FormatError, match="truncated" if n >= 4 else "not a .shvc file") as info:
            C.read_container(data[:n])
        _one_sentence(info.value)


def test_every_single_byte_change_is_detected():
    """Every flipped bit is a FormatError, except one that turns the version (no CRC) into an older
    version: the container reads that, and the codec refuses the payload of another version
    (tests/test_hostile_input.py: a version-3 det file relabelled version 2)."""
    data = small_file()
    for pos in range(len(data)):
        for bit in (0x01, 0x80):
            bad = data[:pos] + bytes([data[pos] ^ bit]) + data[pos + 1:]
            if pos == 4 and 1 <= (C.VERSION ^ bit) < C.VERSION:
                assert C.read_container(bad)[0].version == C.VERSION ^ bit
                continue
            with pytest.raises(FormatError, match="corrupt|truncated|not a .shvc|newer") as info:
                C.read_container(bad)
            _one_sentence(info.value)


@pytest.mark.parametrize("damage,message", [
    (lambda d: d + b"x", "corrupt .unexpected bytes after the compressed data"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "compressed data checksum"),
    (lambda d: d[:20] + bytes([d[20] ^ 0x40]) + d[21:], "header checksum"),
    (lambda d: d[:6] + b"\x01\x00" + d[8:], "corrupt"),            # flags
    (lambda d: d[:4] + b"\x00\x00" + d[6:], "corrupt"),            # version 0
])
def test_corrupt_files(damage, message):
    with pytest.raises(FormatError, match=message) as info:
        C.read_container(damage(small_file()))
    _one_sentence(info.value)


@pytest.mark.parametrize("version", [C.VERSION + 1, 9, 0xFFFF])
def test_newer_version(version):
    data = small_file()
    with pytest.raises(FormatError, match="newer") as info:
        C.read_header(data[:4] + struct.pack("<H", version) + data[6:])
    assert "update" in _one_sentence(info.value)


# --- hostile headers with valid checksums ---------------------------------------------------------
def _s(x: bytes) -> bytes:
    return bytes([len(x)]) + x


def _header_body(width=10, height=10, mode=b"RGB", method=b"model", sha=b"", meta=(), tail=b""):
    body = (struct.pack("<II", width, height) + _s(mode) + _s(method) + _s(b"m") + bytes([len(sha)]) + sha + _s(b"arib")
            + C.FIXED.pack(64, 8, 1, 0, 0, 0.0, 0, 8) + _s(b"PNG") + struct.pack("<H", len(meta)))
    for kind, blob, *claimed in meta:
        body += struct.pack("<BI", kind, claimed[0] if claimed else len(blob)) + blob
    return body + tail


def _frame(body, streams=(), table=None):
    out = struct.pack("<4sHHI", b"SHVC", 1, 0, len(body)) + body + struct.pack("<I", zlib.crc32(body))
    table = table if table is not None else [(len(s), zlib.crc32(s)) for s in streams]
    out += struct.pack("<I", len(table)) + b"".join(struct.pack("<QI", *e) for e in table)
    return out + b"".join(streams)


def test_crafted_header_parses():
    h, streams = C.read_container(_frame(_header_body(), [b"abc"]))
    assert (h.width, h.height, h.mode, h.variant, streams) == (10, 10, "RGB", "arib", [b"abc"])


@pytest.mark.parametrize("width,height,mode", [(0, 10, b"RGB"), (10, 0, b"RGB"), (C.MAX_SIDE + 1, 1, b"L"),
                                               (1 << 20, 1 << 20, b"RGB"), (50000, 50000, b"RGB"),
                                               (0xFFFFFFFF, 0xFFFFFFFF, b"L")])
def test_impossible_sizes(width, height, mode):
    with pytest.raises(FormatError, match="beyond what shvc accepts") as info:
        C.read_header(_frame(_header_body(width, height, mode)))
    _one_sentence(info.value)


def test_size_caps_count_samples():
    C.read_header(_frame(_header_body(46340, 46340, b"L")))                 # 2^31 - ... samples: fine
    with pytest.raises(FormatError, match="beyond"):
        C.read_header(_frame(_header_body(46340, 46340, b"RGBA")))


@pytest.mark.parametrize("body,message", [
    (_header_body(mode=b"XYZ"), "unknown pixel format"),
    (_header_body(method=b"magic"), "unknown pixel format or coding method"),
    (_header_body(sha=b"\x01" * 5), "weights checksum length"),
    (_header_body(meta=[(1, b"", C.MAX_META + 1)]), "impossibly large"),
    (_header_body(meta=[(1, b"", 0xFFFFFFFF)]), "impossibly large"),
    (_header_body(meta=[(1, b"abc", 1000)]), "truncated"),
    (_header_body(meta=[(3, b"\xff\xfe\x00value")]), "text chunk"),
    (_header_body(meta=[(3, b"no separator")]), "text chunk"),
    (_header_body(meta=[(4, b"[1, 2]")]), "information block"),
    (_header_body(meta=[(4, b"{\"dpi\": {\"x\": 1}}")]), "information block"),
    (_header_body(tail=b"extra"), "unexpected bytes after the header"),
    (_header_body()[:-3], "truncated"),
    (_header_body()[:9] + b"\xff" + _header_body()[10:], "truncated|not valid UTF-8|unknown"),
])
def test_bad_headers_with_valid_crc(body, message):
    with pytest.raises(FormatError, match=message) as info:
        C.read_header(_frame(body))
    _one_sentence(info.value)


def test_unknown_metadata_kinds_are_skipped():
    h = C.read_header(_frame(_header_body(meta=[(200, b"future"), (3, b"k\0v")])))
    assert h.text == {"k": "v"}


@pytest.mark.parametrize("table,streams,message", [
    ([(0, 0)] * (C.MAX_STREAMS + 1), [], "too many streams"),
    ([(1 << 62, 0)], [b"abc"], "truncated"),
    ([(3, 0)], [b"abc"], "checksum"),
    ([(2, zlib.crc32(b"ab"))], [b"abc"], "unexpected bytes"),
    ([(3, zlib.crc32(b"abc"))] * 3, [b"abc"], "truncated"),
])
def test_bad_stream_tables(table, streams, message):
    with pytest.raises(FormatError, match=message):
        C.read_container(_frame(_header_body(), streams, table))


def test_stream_table_count_beyond_the_file():
    data = _frame(_header_body(), [])
    bad = data[:-4] + struct.pack("<I", 5)
    with pytest.raises(FormatError, match="truncated"):
        C.read_container(bad)


# --- writer checks --------------------------------------------------------------------------------
def test_writer_refuses_what_a_reader_would_refuse(monkeypatch):
    with pytest.raises(FormatError, match="beyond"):
        C.write_container(C.Header(1 << 20, 1 << 20, "RGB", "model"), [])
    with pytest.raises(ValueError):
        C.write_container(full_header(method="nonsense"), [])
    with pytest.raises(ValueError):
        C.write_container(full_header(weights_sha256="abcd"), [])
    with pytest.raises(ValueError):
        C.write_container(full_header(model_id="x" * 300), [])
    monkeypatch.setattr(C, "MAX_META", 8)
    with pytest.raises(FormatError, match="ICC profile is larger than"):
        C.write_container(full_header(), [])


@settings(max_examples=25, deadline=None)
@given(w=st.integers(1, 5000), h=st.integers(1, 5000), mode=st.sampled_from(sorted(C.MODE_CHANNELS)),
       method=st.sampled_from(C.METHODS), model_id=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), variant=st.sampled_from(["", "shvc", "arib", "det"]),
       nums=st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                      st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
       elbo=st.floats(min_value=0, allow_nan=False, allow_infinity=False), icc=st.one_of(st.none(), st.binary(min_size=1, max_size=300)),
       text=st.dictionaries(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                                    min_size=1, max_size=20),
                            st.text(st.characters(blacklist_categories=("Cs",)), max_size=50), max_size=4),
       streams=st.lists(st.binary(max_size=100), max_size=4))
def test_round_trip_property(w, h, mode, method, model_id, variant, nums, elbo, icc, text, streams):
    patch, group, n, total, initial, crc = nums
    hdr = C.Header(w, h, mode, method, model_id, SHA, variant, min(patch, C.MAX_PATCH), group, n, total, initial,
                   elbo, crc, "TIFF", 16, icc=icc, text=text)
    back, got = C.read_container(C.write_container(hdr, streams))
    assert back == hdr and got == streams


# --- issue 17: hostile metadata values and duplicated blocks --------------------------------------
@pytest.mark.parametrize("mode,info", [
    (b"RGB", b'{"gamma": "x"}'), (b"RGB", b'{"gamma": -1}'), (b"RGB", b'{"gamma": 1e300}'),
    (b"RGB", b'{"gamma": NaN}'), (b"RGB", b'{"dpi": [1e400, 72]}'), (b"RGB", b'{"dpi": [-1, 72]}'),
    (b"RGB", b'{"dpi": [72]}'), (b"RGB", b'{"dpi": ["a", "b"]}'), (b"RGB", b'{"srgb": "a"}'),
    (b"RGB", b'{"srgb": 9}'), (b"RGB", b'{"srgb": true}'), (b"L", b'{"transparency": -5}'),
    (b"L", b'{"transparency": 256}'), (b"RGB", b'{"transparency": 5}'), (b"RGB", b'{"transparency": [1, 2]}'),
    (b"RGB", b'{"transparency": [1, 2, 300]}'), (b"L", b'{"transparency": {"bytes": "00ff"}}'),
    (b"P", b'{"transparency": {"bytes": ""}}'), (b"P", b'{"transparency": {"bytes": "zz"}}'),
    (b"RGBA", b'{"transparency": 3}'), (b"RGB", b'{"gamma": [1]}'),
])
def test_impossible_info_values_are_corrupt(mode, info):
    """Issue 17.1: every info value is checked for type and range on read (no TypeError,
    OverflowError or struct.error later, in a writer)."""
    with pytest.raises(FormatError, match="corrupt.*information block") as err:
        C.read_header(_frame(_header_body(mode=mode, method=b"fallback", meta=[(4, info)])))
    _one_sentence(err.value)


def test_valid_info_values_are_read():
    h = C.read_header(_frame(_header_body(mode=b"P", method=b"fallback", meta=[
        (4, b'{"dpi": [72, 300.5], "gamma": 0.45455, "srgb": 3, "transparency": {"bytes": "00ff"}}')])))
    assert h.info == {"dpi": (72.0, 300.5), "gamma": 0.45455, "srgb": 3, "transparency": b"\x00\xff"}
    h = C.read_header(_frame(_header_body(mode=b"RGB", meta=[(4, b'{"transparency": [1, 2, 255]}')])))
    assert h.info == {"transparency": (1, 2, 255)}


@pytest.mark.parametrize("meta", [
    [(1, b"icc"), (1, b"icc2")], [(2, b"exif"), (2, b"exif")], [(4, b"{}"), (4, b'{"srgb": 1}')],
    [(3, b"k\0a"), (3, b"k\0b")], [(5, b"\0\0\0\0"), (5, b"\0\0\0\0")],
])
def test_duplicate_metadata_blocks_are_corrupt(meta):
    """Issue 17.1: a second block of a kind that holds one value does not silently replace the first."""
    with pytest.raises(FormatError, match="twice"):
        C.read_header(_frame(_header_body(meta=meta)))


@pytest.mark.parametrize("elbo", [float("nan"), float("inf"), -1.0])
def test_impossible_model_code_length_is_corrupt(elbo):
    """Issue 17.9: a NaN or infinite report field never reaches `shvc info --json`."""
    body = _header_body().replace(C.FIXED.pack(64, 8, 1, 0, 0, 0.0, 0, 8), C.FIXED.pack(64, 8, 1, 0, 0, elbo, 0, 8))
    with pytest.raises(FormatError, match="code length"):
        C.read_header(_frame(body))
    with pytest.raises(ValueError):
        C.write_container(full_header(neg_elbo_bits=elbo), [])


def test_writer_refuses_info_a_reader_would_refuse():
    for mode, info in (("RGB", {"gamma": -1.0}), ("L", {"transparency": (1, 2, 3)}), ("RGB", {"dpi": (1e400, 1)})):
        with pytest.raises(ValueError):
            C.write_container(full_header(mode=mode, info=info), [])
