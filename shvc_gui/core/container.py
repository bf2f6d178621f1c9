"""The .shvc byte format (specified field by field in docs/FORMAT.md).

Little-endian fixed-width fields packed with :mod:`struct`. A reader never trusts a length: every
length is checked against a cap and against the bytes that are really there before it is used, and
both the header and each payload stream carry a CRC-32 so that damage is reported as a
:class:`FormatError` before any decoding starts.

Layout::

    preamble  "SHVC" | u16 version | u16 flags (0) | u32 header_length
    header    header_length bytes (the fields of :class:`Header`)
              u32 CRC-32 of the header bytes
    streams   u32 count | count x (u64 length, u32 CRC-32) | the stream bytes, back to back

This module has no dependency on numpy, Pillow or torch so that ``shvc info`` stays cheap.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import modes
from .errors import FormatError, ShvcError, UsageError
# Pixel modes and coding methods have one home, .modes; the names the format uses are imported here.
from .modes import (METHOD_FALLBACK, METHOD_MIXED, METHOD_MODEL, METHODS, MODE_CHANNELS,  # noqa: F401
                    MODEL_CHANNELS, MODEL_METHODS)

MAGIC = b"SHVC"
VERSION = 6                        # 6: colour lists with their colours' counts; 5: scale offsets per
                                   # scale bucket; 4: whole-image payloads start with a
                                   # colour list and scale offsets; 3: det payloads code the
                                   # whole image; 2: the pointwise rANS coder; 1: whole tables
PREAMBLE = struct.Struct("<4sHHI")         # magic, version, flags, header length (12 bytes)
CRC = struct.Struct("<I")
STREAM_ENTRY = struct.Struct("<QI")        # length, CRC-32
FIXED = struct.Struct("<HIIQQdIB")         # patch .. bit_depth (see _encode_header)

# Caps that keep a damaged or hostile header from causing huge allocations.
MAX_SIDE = 1 << 20                 # width and height each at most 1,048,576 ...
MAX_SUBPIXELS = 1 << 31            # ... and width x height x channels at most 2^31
MAX_STRING = 255                   # short text fields: one length byte
MAX_META = 64 << 20                # one metadata block (ICC profile, EXIF, one text chunk, info)
MAX_STREAMS = 16
MAX_PATCH = 4096

# Metadata block kinds.
META_ICC, META_EXIF, META_TEXT, META_INFO, META_REBUILD_CRC = 1, 2, 3, 4, 5
INFO_KEYS = ("dpi", "gamma", "srgb", "transparency")
MAX_DPI = 1_000_000.0              # info values beyond these are refused (no image writer holds them)
MAX_GAMMA = 100.0
# Which transparency each mode may carry: a grey level / palette index, an [r, g, b] colour key, or
# palette alpha bytes (any other mode: none), with the largest sample value.
_KEY_MODES = {"1": 255, "L": 255, "P": 255, "I": 65535, "I;16": 65535, "I;16B": 65535, "I;16L": 65535,
              "I;16N": 65535}
_COLOUR_KEY_MODES = {"RGB": 255, "RGB;16": 65535}


@dataclass
class Header:
    width: int
    height: int
    mode: str                       # pixel format of the original ("RGB", "RGBA", "L", "P", "RGB;16", ...)
    method: str                     # METHOD_MODEL / METHOD_MIXED / METHOD_FALLBACK
    model_id: str = ""              # empty when no model was used
    weights_sha256: str = ""        # hex, 64 characters, or empty (stored as 32 raw bytes)
    variant: str = ""               # "shvc", "arib", "det" or empty
    patch: int = 0                  # patch side (0 without the model)
    group_size: int = 0             # patches coded together (part of the bit stream layout)
    n_patches: int = 0
    total_bits: int = 0             # size of the model payload in bits
    initial_bits: int = 0           # bits-back overhead paid in the file
    neg_elbo_bits: float = 0.0      # the model's ideal code length (report only)
    pixel_crc: int = 0              # image_io.pixel_checksum of the original
    source_format: str = ""         # "PNG", "JPEG", ... (report only)
    bit_depth: int = 8              # bits per sample of the original (report only)
    icc: bytes | None = None
    exif: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)     # PNG text chunks
    info: dict = field(default_factory=dict)               # dpi, gamma, srgb, transparency
    rebuild_crc: int | None = None  # image_io.rebuild_checksum: pixel CRC extended over palette mode and
                                    # transparency (None: not stored, as in files without either)
    version: int = VERSION          # the format version (of the file it was read from)

    @property
    def channels(self) -> int:
        return modes.channels(self.mode)

    @property
    def uses_model(self) -> bool:
        return self.method in MODEL_METHODS

    @property
    def bpd(self) -> float:
        """Model payload bits per coded RGB sub-pixel (0 when no model was used)."""
        return self.total_bits / max(1, MODEL_CHANNELS * self.width * self.height)


# --- low-level reading ---------------------------------------------------------------------------
class _Reader:
    def __init__(self, data, what: str, pos: int = 0, end: int | None = None):
        self.data, self.pos, self.what = data, pos, what
        self.end = len(data) if end is None else end

    @property
    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise FormatError(f"The file is truncated (its {self.what} ends early).")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def unpack(self, s: struct.Struct | str):
        if isinstance(s, str):
            s = struct.Struct("<" + s)
        return s.unpack(self.take(s.size))

    def string(self) -> str:
        (n,) = self.unpack("B")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("The file is corrupt (a text field is not valid UTF-8).") from None


def _string(s: str, what: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > MAX_STRING:
        raise UsageError(f"{what} is longer than {MAX_STRING} bytes: {s[:40]!r}")
    return struct.pack("<B", len(b)) + b


# --- info block (a few small Pillow info values) as JSON -------------------------------------------
def _number(v, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo < v <= hi:
        raise UsageError
    return float(v)


def _sample(v, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise UsageError
    return v


def check_info_value(key: str, v, mode: str):
    """``v`` as the info value ``key`` of an image of ``mode``, normalized (dpi and colour keys as
    tuples); ValueError when its type or range is not one an image file can hold."""
    if key == "dpi":
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise UsageError
        return tuple(_number(x, 0.0, MAX_DPI) for x in v)
    if key == "gamma":
        return _number(v, 0.0, MAX_GAMMA - 1e-9)
    if key == "srgb":
        return _sample(v, 3)
    if key != "transparency":
        raise UsageError
    if isinstance(v, (bytes, bytearray)) and mode == "P" and 1 <= len(v) <= 256:
        return bytes(v)
    if mode in _KEY_MODES and not isinstance(v, (bytes, bytearray, tuple, list)):
        return _sample(v, _KEY_MODES[mode])
    if mode in _COLOUR_KEY_MODES and isinstance(v, (tuple, list)) and len(v) == 3:
        return tuple(_sample(x, _COLOUR_KEY_MODES[mode]) for x in v)
    raise UsageError


def check_info(info: dict, mode: str) -> dict:
    """Every value of ``info`` checked (:func:`check_info_value`); unknown keys are an error."""
    return {k: check_info_value(k, info[k], mode) for k in info}


def _info_to_json(info: dict, mode: str) -> bytes:
    try:
        info = check_info({k: info[k] for k in INFO_KEYS if k in info}, mode)
    except ValueError:
        raise UsageError(f"unsupported info values for a {mode} image: {info!r}") from None
    conv = {k: ({"bytes": v.hex()} if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v)
            for k, v in info.items()}
    return json.dumps(conv, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _info_from_json(blob: bytes, mode: str) -> dict:
    def conv(v):
        if isinstance(v, dict):
            if set(v) != {"bytes"} or not isinstance(v["bytes"], str):
                raise UsageError
            return bytes.fromhex(v["bytes"])
        return v
    try:
        raw = json.loads(blob.decode("utf-8"), parse_constant=_no_constant)
        if not isinstance(raw, dict):
            raise UsageError
        return check_info({k: conv(v) for k, v in raw.items() if k in INFO_KEYS}, mode)
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, RecursionError):
        raise FormatError("The file is corrupt (its image information block cannot be read or holds "
                          "impossible values).") from None


def _no_constant(name: str):
    raise UsageError(name)                       # NaN, Infinity: not JSON


# --- header ---------------------------------------------------------------------------------------
def _check_dims(width: int, height: int, mode: str, reading: bool = True) -> None:
    channels = modes.channels(mode)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height * channels > MAX_SUBPIXELS:
        what = "The file claims an image" if reading else "An image"
        raise FormatError(f"{what} of {width}x{height} pixels is beyond what shvc accepts "
                          f"(at most {MAX_SIDE:,} pixels a side and {MAX_SUBPIXELS:,} samples).")


def _meta_blocks(h: Header) -> list[tuple[int, bytes]]:
    meta = []
    if h.icc:
        meta.append((META_ICC, bytes(h.icc)))
    if h.exif:
        meta.append((META_EXIF, bytes(h.exif)))
    for k, v in h.text.items():
        if not k or "\0" in k:
            raise UsageError(f"invalid text key {k!r}")
        meta.append((META_TEXT, k.encode("utf-8") + b"\0" + v.encode("utf-8")))
    if h.info:
        blob = _info_to_json(h.info, h.mode)
        if blob != b"{}":
            meta.append((META_INFO, blob))
    if h.rebuild_crc is not None:
        meta.append((META_REBUILD_CRC, CRC.pack(h.rebuild_crc & 0xFFFFFFFF)))
    for kind, blob in meta:
        if len(blob) > MAX_META:
            what = {META_ICC: "ICC profile", META_EXIF: "EXIF block", META_TEXT: "text chunk"}.get(kind, "metadata")
            raise FormatError(f"The image's {what} is larger than {MAX_META >> 20} MiB and cannot be stored "
                              "in a .shvc file.")
    if len(meta) > 0xFFFF:
        raise FormatError("The image has more than 65535 metadata entries and cannot be stored in a .shvc file.")
    return meta


def _encode_header(h: Header) -> bytes:
    if h.method not in METHODS:
        raise UsageError(f"unknown coding method {h.method!r}")
    if h.mode not in MODE_CHANNELS:
        raise UsageError(f"unknown pixel format {h.mode!r}")
    _check_dims(h.width, h.height, h.mode, reading=False)
    if not math.isfinite(h.neg_elbo_bits) or h.neg_elbo_bits < 0:
        raise UsageError(f"the model code length must be finite and >= 0, not {h.neg_elbo_bits}")
    sha = bytes.fromhex(h.weights_sha256) if h.weights_sha256 else b""
    if sha and len(sha) != 32:
        raise UsageError("weights_sha256 must be 32 bytes (64 hex digits)")
    out = [struct.pack("<II", h.width, h.height), _string(h.mode, "mode"), _string(h.method, "method"),
           _string(h.model_id, "model id"), struct.pack("<B", len(sha)), sha, _string(h.variant, "variant"),
           FIXED.pack(h.patch, h.group_size, h.n_patches, h.total_bits, h.initial_bits, float(h.neg_elbo_bits),
                      h.pixel_crc & 0xFFFFFFFF, h.bit_depth),
           _string(h.source_format, "source format")]
    meta = _meta_blocks(h)
    out.append(struct.pack("<H", len(meta)))
    for kind, blob in meta:
        out.append(struct.pack("<BI", kind, len(blob)) + blob)
    return b"".join(out)


def _decode_header(data, start: int, end: int, version: int) -> Header:
    r = _Reader(data, "header", start, end)
    width, height = r.unpack("II")
    mode, method, model_id = r.string(), r.string(), r.string()
    if mode not in MODE_CHANNELS or method not in METHODS:
        raise FormatError("The file is corrupt (unknown pixel format or coding method).")
    _check_dims(width, height, mode)
    (n_sha,) = r.unpack("B")
    if n_sha not in (0, 32):
        raise FormatError("The file is corrupt (bad weights checksum length).")
    sha = r.take(n_sha).hex()
    variant = r.string()
    patch, group, n_patches, total_bits, initial_bits, elbo, crc, depth = r.unpack(FIXED)
    if patch > MAX_PATCH:
        raise FormatError("The file is corrupt (impossible patch size).")
    if not math.isfinite(elbo) or elbo < 0:
        raise FormatError("The file is corrupt (impossible model code length).")
    source_format = r.string()
    h = Header(width, height, mode, method, model_id, sha, variant, patch, group, n_patches, total_bits,
               initial_bits, elbo, crc, source_format, depth, version=version)
    (n_meta,) = r.unpack("H")
    seen = set()
    for _ in range(n_meta):
        kind, length = r.unpack("BI")
        if length > MAX_META:
            raise FormatError("The file is corrupt (a metadata block is impossibly large).")
        blob = r.take(length)
        if kind == META_TEXT:
            key, sep, value = blob.partition(b"\0")
            try:
                if not sep or not key:
                    raise UnicodeDecodeError("utf-8", b"", 0, 1, "no key")
                key, value = key.decode("utf-8"), value.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError("The file is corrupt (a text chunk cannot be read).") from None
            if key in h.text:
                raise FormatError("The file is corrupt (it holds the same text chunk twice).")
            h.text[key] = value
            continue
        if kind in seen and kind in (META_ICC, META_EXIF, META_INFO, META_REBUILD_CRC):
            raise FormatError("The file is corrupt (it holds the same metadata block twice).")
        seen.add(kind)
        if kind == META_ICC:
            h.icc = blob
        elif kind == META_EXIF:
            h.exif = blob
        elif kind == META_INFO:
            h.info = _info_from_json(blob, mode)
        elif kind == META_REBUILD_CRC:
            if length != CRC.size:
                raise FormatError("The file is corrupt (bad image checksum block).")
            (h.rebuild_crc,) = CRC.unpack(blob)
        # other kinds: optional metadata from a later writer; skipped
    if r.left:
        raise FormatError("The file is corrupt (unexpected bytes after the header).")
    return h


# --- whole container --------------------------------------------------------------------------------
def write_container(header: Header, streams: list[bytes]) -> bytes:
    """Serialize ``header`` and the payload ``streams`` (bytes each; may be empty) into .shvc bytes.

    The file gets ``header.version`` (the current one for a new header; a header read from a file
    keeps that file's version, which names the coder of its payload)."""
    if len(streams) > MAX_STREAMS:
        raise UsageError(f"at most {MAX_STREAMS} streams")
    if not 1 <= header.version <= VERSION:
        raise UsageError(f"format version {header.version} cannot be written")
    hb = _encode_header(header)
    out = [PREAMBLE.pack(MAGIC, header.version, 0, len(hb)), hb, CRC.pack(zlib.crc32(hb)), struct.pack("<I", len(streams))]
    out += [STREAM_ENTRY.pack(len(s), zlib.crc32(s)) for s in streams]
    out += [bytes(s) for s in streams]
    return b"".join(out)


def _preamble(data, whole: bool = True) -> tuple[int, int]:
    """Check magic, version and flags; return the format version and the header length. ``whole``: ``data`` must hold the
    header and its CRC too."""
    if len(data) < len(MAGIC) or bytes(data[:4]) != MAGIC:
        raise FormatError("This is not a .shvc file.")
    if len(data) < PREAMBLE.size:
        raise FormatError("The file is truncated (it ends inside its first bytes).")
    _, version, flags, hlen = PREAMBLE.unpack_from(data)
    if version > VERSION:
        raise FormatError(f"The file was made by a newer shvc (format version {version}; this one reads "
                          f"up to {VERSION}). Please update shvc-gui.")
    if version < 1 or flags != 0:
        raise FormatError("The file is corrupt (bad version or flags field).")
    if whole and PREAMBLE.size + hlen + CRC.size > len(data):
        raise FormatError("The file is truncated (its header ends early).")
    return version, hlen


def _checked_header(data) -> tuple[Header, int]:
    version, hlen = _preamble(data)
    start, end = PREAMBLE.size, PREAMBLE.size + hlen
    (crc,) = CRC.unpack_from(data, end)
    if zlib.crc32(memoryview(data)[start:end]) != crc:
        raise FormatError("The file is corrupt (header checksum mismatch).")
    return _decode_header(data, start, end, version), end + CRC.size


def read_header(data: bytes) -> Header:
    """Parse and check the header only (cheap: the payload streams are not read).

    ``data`` may be the whole file or just its first bytes (at least the header)."""
    return _checked_header(data)[0]


def read_container(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse a whole .shvc file: the header and every payload stream, all CRCs checked."""
    header, pos = _checked_header(data)
    r = _Reader(data, "stream table", pos)
    (n,) = r.unpack("I")
    if n > MAX_STREAMS:
        raise FormatError("The file is corrupt (too many streams).")
    if n * STREAM_ENTRY.size > r.left:
        raise FormatError("The file is truncated (its stream table ends early).")
    table = [r.unpack(STREAM_ENTRY) for _ in range(n)]
    total = sum(length for length, _ in table)
    if total > r.left:
        raise FormatError("The file is truncated (its compressed data ends early).")
    if total < r.left:
        raise FormatError("The file is corrupt (unexpected bytes after the compressed data).")
    streams = []
    for length, crc in table:
        s = r.take(length)
        if zlib.crc32(s) != crc:
            raise FormatError("The file is corrupt (compressed data checksum mismatch).")
        streams.append(s)
    return header, streams


def read_header_file(path) -> Header:
    """Read just enough of the file at ``path`` to parse its header (for listings and ``shvc info``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(PREAMBLE.size)
            _, hlen = _preamble(head, whole=False)
            size = os.fstat(f.fileno()).st_size
            if PREAMBLE.size + hlen + CRC.size > size:
                raise FormatError("The file is truncated (its header ends early).")
            data = head + f.read(hlen + CRC.size)
    except OSError as exc:
        raise ShvcError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None
    return read_header(data)


def describe(h: Header, path=None) -> dict:
    """What ``shvc info`` and the GUI show about a .shvc file (JSON-friendly: every number finite)."""
    d = {"width": h.width, "height": h.height, "mode": h.mode, "method": h.method, "model": h.model_id,
         "weights_sha256": h.weights_sha256, "variant": h.variant, "patch": h.patch, "group_size": h.group_size,
         "patches": h.n_patches, "payload_bits": h.total_bits, "initial_bits": h.initial_bits,
         "model_ideal_bits": round(h.neg_elbo_bits, 1), "source_format": h.source_format,
         "bit_depth": h.bit_depth, "metadata": {"icc": len(h.icc or b""), "exif": len(h.exif or b""),
                                                "text": sorted(h.text), "info": sorted(h.info)}}
    if path is not None:
        size = Path(path).stat().st_size
        d.update(file=str(path), bytes=size, bpd=round(modes.bits_per_dimension(size, h.mode, h.width, h.height), 4))
    d["format_version"] = h.version
    return d
