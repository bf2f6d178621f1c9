"""Classic lossless codecs for comparison: PNG, WebP lossless, JPEG-XL (effort 7 and 9), FLIF.

Each codec encodes, decodes, checks that the pixels came back exactly, and reports its size and
times. FLIF runs through an external ``flif`` binary when one is on PATH; otherwise it is reported
as not installed (never an error).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image


@dataclass
class BaselineResult:
    codec: str
    n_bytes: int | None          # None: codec not available
    bpd: float | None
    encode_s: float = 0.0
    decode_s: float = 0.0
    lossless_ok: bool = False
    note: str = ""


def _pil_codec(fmt: str, **kw):
    def enc(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, **kw)
        return buf.getvalue()

    def dec(b: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA", "PA") else im.mode))
    return enc, dec


def _jxl(effort: int):
    import imagecodecs

    def enc(a):
        return imagecodecs.jpegxl_encode(a, lossless=True, effort=effort)
    return enc, imagecodecs.jpegxl_decode


def _flif():
    exe = shutil.which("flif")

    def enc(a: np.ndarray) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            src, dst = Path(d) / "in.png", Path(d) / "out.flif"
            Image.fromarray(a).save(src)
            subprocess.run([exe, "-e", "--overwrite", str(src), str(dst)], check=True, capture_output=True)
            return dst.read_bytes()

    def dec(b: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory() as d:
            src, dst = Path(d) / "in.flif", Path(d) / "out.png"
            src.write_bytes(b)
            subprocess.run([exe, "-d", "--overwrite", str(src), str(dst)], check=True, capture_output=True)
            with Image.open(dst) as im:
                return np.asarray(im)
    return enc, dec


CODECS: dict[str, Callable[[], tuple]] = {
    "png": lambda: _pil_codec("PNG", optimize=True),
    "webp": lambda: _pil_codec("WEBP", lossless=True, quality=100, method=6),
    "jxl": lambda: _jxl(7),
    "jxl-e9": lambda: _jxl(9),
    "flif": _flif,
}
LABELS = {"png": "PNG", "webp": "WebP", "jxl": "JPEG-XL", "jxl-e9": "JPEG-XL e9", "flif": "FLIF"}


def available(codec: str) -> bool:
    if codec == "flif":
        return shutil.which("flif") is not None
    return codec in CODECS


def measure(codec: str, pixels: np.ndarray) -> BaselineResult:
    """Size and speed of ``codec`` on an HxW or HxWxC uint8 array; checks the round trip."""
    dims = pixels.size
    if not available(codec):
        return BaselineResult(codec, None, None, note="not installed")
    enc, dec = CODECS[codec]()
    t0 = time.perf_counter()
    try:
        data = enc(pixels)
        t1 = time.perf_counter()
        back = dec(data)
        t2 = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 - a codec that cannot take this image is reported, not fatal
        return BaselineResult(codec, None, None, note=f"failed: {exc}")
    ok = back.shape == pixels.shape and np.array_equal(back, pixels)
    return BaselineResult(codec, len(data), 8 * len(data) / dims, t1 - t0, t2 - t1, ok,
                          "" if ok else "NOT lossless")


def comparable_pixels(img) -> np.ndarray | None:
    """The uint8 array the classic codecs are given for a LoadedImage: the same samples the .shvc
    file holds, so bits per dimension compare like for like (None for modes they cannot take)."""
    px = img.pixels
    if px.dtype != np.uint8 or img.mode not in ("RGB", "RGBA", "L"):
        return None
    return px[:, :, 0] if img.mode == "L" else px
