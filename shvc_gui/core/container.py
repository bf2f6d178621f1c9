"""The .shvc byte format (see docs/FORMAT.md). Little-endian, fixed-width fields, every length
checked against the bytes that are really there before it is used."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .errors import FormatError

MAGIC = b"SHVC"
VERSION = 1
MAX_SIDE = 1 << 20                 # a header may not claim more than this per side ...
MAX_PIXELS = 1 << 31               # ... or more pixels than this in all
MAX_STRING = 255
MAX_META = 64 << 20                # one metadata block
MAX_STREAMS = 16
PREAMBLE = struct.Struct("<4sHHI")  # magic, version, flags, header length
META_KINDS = {1: "icc", 2: "exif", 3: "text"}


@dataclass
class Header:
    width: int
    height: int
    mode: str                       # Pillow mode of the original ("RGB", "RGBA", "L", "P", "RGB;16", ...)
    method: str                     # image_io.METHOD_*
    model_id: str = ""              # empty when no model was used
    weights_sha256: str = ""        # hex, 64 characters, or empty
    variant: str = ""
    patch: int = 0
    group_size: int = 0
    n_patches: int = 0
    total_bits: int = 0             # of the ANS payload
    initial_bits: int = 0
    neg_elbo_bits: float = 0.0
    pixel_crc: int = 0
    source_format: str = ""
    bit_depth: int = 8
    icc: bytes | None = None
    exif: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)

    @property
    def bpd(self) -> float:
        return self.total_bits / max(1, 3 * self.width * self.height)


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"The file is truncated (its {self.what} ends early).")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def string(self) -> str:
        (n,) = self.unpack("B")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("The file is corrupt (a text field is not UTF-8).") from None


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > MAX_STRING:
        raise ValueError(f"string too long for the container: {s[:40]!r}")
    return struct.pack("<B", len(b)) + b


def _encode_header(h: Header) -> bytes:
    sha = bytes.fromhex(h.weights_sha256) if h.weights_sha256 else b""
    if sha and len(sha) != 32:
        raise ValueError("weights_sha256 must be 32 bytes")
    out = [struct.pack("<II", h.width, h.height), _string(h.mode), _string(h.method), _string(h.model_id),
           struct.pack("<B", len(sha)), sha, _string(h.variant),
           struct.pack("<HIIQQdIB", h.patch, h.group_size, h.n_patches, h.total_bits, h.initial_bits,
                       h.neg_elbo_bits, h.pixel_crc, h.bit_depth), _string(h.source_format)]
    meta = []
    if h.icc:
        meta.append((1, h.icc))
    if h.exif:
        meta.append((2, h.exif))
    for k, v in h.text.items():
        meta.append((3, k.encode("utf-8") + b"\0" + v.encode("utf-8")))
    out.append(struct.pack("<H", len(meta)))
    for kind, blob in meta:
        out.append(struct.pack("<BI", kind, len(blob)) + blob)
    return b"".join(out)


def _decode_header(data: bytes) -> Header:
    r = _Reader(data, "header")
    width, height = r.unpack("II")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise FormatError(f"The file claims an image of {width}x{height} pixels, beyond what shvc accepts.")
    mode, method, model_id = r.string(), r.string(), r.string()
    (n_sha,) = r.unpack("B")
    if n_sha not in (0, 32):
        raise FormatError("The file is corrupt (bad weights checksum length).")
    sha = r.take(n_sha).hex()
    variant = r.string()
    patch, group, n_patches, total_bits, initial_bits, elbo, crc, depth = r.unpack("HIIQQdIB")
    source_format = r.string()
    h = Header(width, height, mode, method, model_id, sha, variant, patch, group, n_patches, total_bits,
               initial_bits, elbo, crc, source_format, depth)
    (n_meta,) = r.unpack("H")
    for _ in range(n_meta):
        kind, length = r.unpack("BI")
        if length > MAX_META:
            raise FormatError("The file is corrupt (a metadata block is impossibly large).")
        blob = r.take(length)
        if kind == 1:
            h.icc = blob
        elif kind == 2:
            h.exif = blob
        elif kind == 3:
            key, _, value = blob.partition(b"\0")
            h.text[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    if r.pos != len(data):
        raise FormatError("The file is corrupt (unexpected bytes after the header).")
    return h


def write_container(header: Header, streams: list[bytes]) -> bytes:
    hb = _encode_header(header)
    out = [PREAMBLE.pack(MAGIC, VERSION, 0, len(hb)), hb, struct.pack("<I", zlib.crc32(hb)),
           struct.pack("<I", len(streams))]
    out += [struct.pack("<QI", len(s), zlib.crc32(s)) for s in streams]
    out += streams
    return b"".join(out)


def _preamble(data: bytes) -> tuple[int, int]:
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("This is not a .shvc file.")
    if len(data) < PREAMBLE.size:
        raise FormatError("The file is truncated (it ends inside its first bytes).")
    _, version, _, hlen = PREAMBLE.unpack_from(data)
    if version > VERSION:
        raise FormatError(f"The file was made by a newer shvc (format version {version}; this one reads "
                          f"up to {VERSION}). Please update shvc-gui.")
    if version < 1:
        raise FormatError("The file is corrupt (format version 0).")
    if PREAMBLE.size + hlen + 4 > len(data):
        raise FormatError("The file is truncated (its header ends early).")
    return version, hlen


def read_header(data: bytes) -> Header:
    """Parse and check the header only (cheap; no payload is touched beyond its bounds)."""
    _, hlen = _preamble(data)
    hb = data[PREAMBLE.size:PREAMBLE.size + hlen]
    (crc,) = struct.unpack_from("<I", data, PREAMBLE.size + hlen)
    if zlib.crc32(hb) != crc:
        raise FormatError("The file is corrupt (header checksum mismatch).")
    return _decode_header(hb)


def read_container(data: bytes) -> tuple[Header, list[bytes]]:
    header = read_header(data)
    _, hlen = _preamble(data)
    r = _Reader(data, "stream table")
    r.pos = PREAMBLE.size + hlen + 4
    (n,) = r.unpack("I")
    if n > MAX_STREAMS:
        raise FormatError("The file is corrupt (too many streams).")
    table = [r.unpack("QI") for _ in range(n)]
    if sum(length for length, _ in table) != len(data) - r.pos:
        if sum(length for length, _ in table) > len(data) - r.pos:
            raise FormatError("The file is truncated (its compressed data ends early).")
        raise FormatError("The file is corrupt (unexpected bytes after the compressed data).")
    streams = []
    for length, crc in table:
        s = r.take(length)
        if zlib.crc32(s) != crc:
            raise FormatError("The file is corrupt (compressed data checksum mismatch).")
        streams.append(s)
    return header, streams
