"""Reading and writing pixels with their metadata; how each pixel format is coded.

8-bit RGB goes through the learned model. Everything else is split so that nothing is refused:
RGBA codes its RGB planes with the model and its alpha plane in an embedded PNG; greyscale, palette,
grey+alpha, 16-bit and other modes are embedded whole as a lossless PNG (or TIFF where PNG cannot hold
the mode). ``info`` says which method a file used.
"""

from __future__ import annotations

import io
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import ImageError, ShvcError

MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485       # Pillow's decompression-bomb limit
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
READ_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jxl"}
WRITE_FORMATS = {"png": "PNG", "tiff": "TIFF", "tif": "TIFF", "webp": "WEBP", "bmp": "BMP"}

METHOD_MODEL = "model"                 # 8-bit RGB through SHVC
METHOD_MODEL_ALPHA = "model+png-alpha"  # RGB through SHVC, alpha plane as embedded PNG
METHOD_FALLBACK = "embedded-lossless"  # whole image as embedded PNG/TIFF


@dataclass
class LoadedImage:
    """Pixels and what must come back with them. ``pil`` is the image as Pillow holds it."""
    pil: Image.Image
    icc: bytes | None = None
    exif: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)
    source_format: str = ""
    bit_depth: int = 8

    @property
    def mode(self) -> str:
        return self.pil.mode

    @property
    def size(self) -> tuple[int, int]:
        return self.pil.size


def _pixels_of(pil: Image.Image) -> bytes:
    return pil.tobytes() + (pil.getpalette() and bytes(pil.getpalette()) or b"")


def pixel_checksum(img: LoadedImage) -> int:
    """CRC-32 over mode, size, pixels and palette."""
    head = f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode()
    return zlib.crc32(_pixels_of(img.pil), zlib.crc32(head))


def _check_size(w: int, h: int, name: str) -> None:
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}x{h} pixels, more than the {MAX_PIXELS:,}-pixel limit "
                         "that protects against decompression bombs.")


def load_image(path: Path) -> LoadedImage:
    """Decode an image file with its ICC profile, EXIF and PNG text chunks (GIF: first frame)."""
    path = Path(path)
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{name} cannot be read ({exc.strerror or exc}).") from None
    if path.suffix.lower() == ".jxl" or data[:2] == b"\xff\x0a" or data[4:12] == b"JXL \r\n\x87\n":
        return _load_jxl(data, name)
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_size(*im.size, name)
            fmt = im.format or ""
            im.seek(0)
            im.load()
            pil = im.copy()
            info = dict(im.info)
            text = {k: v for k, v in getattr(im, "text", {}).items() if isinstance(v, str)}
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageError(f"{name} is larger than the decompression-bomb limit.") from None
        raise ImageError(f"{name} is not an image format shvc can read.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is damaged or truncated ({exc}).") from None
    bit_depth = 8
    if fmt == "PNG" and pil.mode in ("RGB", "RGBA"):
        pil, bit_depth = _maybe_16bit_png(data, pil)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        bit_depth = 16
    exif = info.get("exif")
    if fmt == "GIF" and pil.mode == "P" and "transparency" in info:
        pil.info["transparency"] = info["transparency"]
    return LoadedImage(pil, info.get("icc_profile") or None, exif or None, text, fmt, bit_depth)


def _maybe_16bit_png(data: bytes, pil: Image.Image):
    """Pillow reads 48/64-bit PNGs as 8 bits; keep all 16 bits through imagecodecs."""
    if data[24:25] != b"\x10":                  # IHDR bit depth byte
        return pil, 8
    import imagecodecs
    arr = imagecodecs.png_decode(data)
    return _Array16(arr), 16


class _Array16:
    """A 16-bit RGB(A) image Pillow cannot hold: wraps the numpy array with the Pillow API we use."""

    def __init__(self, arr: np.ndarray):
        self.arr = np.ascontiguousarray(arr)
        self.mode = "RGB;16" if arr.shape[2] == 3 else "RGBA;16"
        self.size = (arr.shape[1], arr.shape[0])
        self.info = {}

    def tobytes(self) -> bytes:
        return self.arr.astype("<u2").tobytes()

    def getpalette(self):
        return None


def _load_jxl(data: bytes, name: str) -> LoadedImage:
    import imagecodecs
    try:
        arr = imagecodecs.jpegxl_decode(data)
    except Exception as exc:  # noqa: BLE001 - imagecodecs raises its own error types
        raise ImageError(f"{name} is not a readable JPEG-XL file ({exc}).") from None
    if arr.dtype != np.uint8:
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return LoadedImage(_Array16(arr.astype(np.uint16)), source_format="JPEG-XL", bit_depth=16)
        return LoadedImage(Image.fromarray(arr.astype(np.uint16)), source_format="JPEG-XL", bit_depth=16)
    _check_size(arr.shape[1], arr.shape[0], name)
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2] if arr.ndim == 3 else 2]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return LoadedImage(Image.fromarray(arr, mode), source_format="JPEG-XL")


# --- how pixels are coded --------------------------------------------------------------------
def embed_lossless(pil) -> bytes:
    """Whole image as lossless bytes: PNG (16-bit through imagecodecs), TIFF for other modes."""
    if isinstance(pil, _Array16):
        import imagecodecs
        return b"P16" + imagecodecs.png_encode(pil.arr)
    buf = io.BytesIO()
    if pil.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        pil.save(buf, format="PNG", optimize=True)
        return b"PNG" + buf.getvalue()
    pil.save(buf, format="TIFF", compression="tiff_adobe_deflate")
    return b"TIF" + buf.getvalue()


def extract_lossless(data: bytes):
    kind, body = data[:3], data[3:]
    if kind == b"P16":
        import imagecodecs
        return _Array16(imagecodecs.png_decode(body))
    if kind not in (b"PNG", b"TIF"):
        raise ShvcError("The embedded image stream is of an unknown kind.")
    with Image.open(io.BytesIO(body)) as im:
        im.load()
        return im.copy()


def split_for_coding(img: LoadedImage):
    """-> (rgb HxWx3 uint8 for the model or None, embedded bytes or None, method)."""
    pil = img.pil
    if pil.mode == "RGB":
        return np.asarray(pil), None, METHOD_MODEL
    if pil.mode == "RGBA":
        arr = np.asarray(pil)
        alpha = Image.fromarray(np.ascontiguousarray(arr[..., 3]), "L")
        return np.ascontiguousarray(arr[..., :3]), embed_lossless(alpha), METHOD_MODEL_ALPHA
    return None, embed_lossless(pil), METHOD_FALLBACK


def join_after_decoding(rgb: np.ndarray | None, embedded: bytes | None, method: str):
    """Inverse of :func:`split_for_coding`: the Pillow image (or 16-bit wrapper)."""
    if method == METHOD_MODEL:
        return Image.fromarray(rgb, "RGB")
    if method == METHOD_MODEL_ALPHA:
        alpha = np.asarray(extract_lossless(embedded))
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    if method == METHOD_FALLBACK:
        return extract_lossless(embedded)
    raise ShvcError(f"Unknown coding method {method!r}.")


# --- writing -----------------------------------------------------------------------------------
def atomic_write(path: Path, data: bytes, force: bool = False) -> None:
    """Write through a temporary file in the same folder and an atomic rename; never overwrite an
    existing file unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise ShvcError(f"{path} already exists; use --force (or confirm) to replace it.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise ShvcError(f"Cannot write to {path.parent} ({exc.strerror or exc}).") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                # as a plain open() would have made it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not force and path.exists():
            raise ShvcError(f"{path} already exists; use --force (or confirm) to replace it.")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_image(img: LoadedImage, fmt: str = "png") -> bytes:
    """Lossless bytes of ``img`` in ``fmt`` with ICC, EXIF and PNG text restored."""
    fmt = fmt.lower()
    if fmt not in WRITE_FORMATS:
        raise ShvcError(f"Cannot write {fmt!r}; choose one of {', '.join(sorted(set(WRITE_FORMATS)))}.")
    pil = img.pil
    if isinstance(pil, _Array16):
        if fmt != "png":
            raise ShvcError("16-bit colour images can only be written as PNG.")
        import imagecodecs
        return imagecodecs.png_encode(pil.arr)
    kw = {}
    if img.icc:
        kw["icc_profile"] = img.icc
    if img.exif and fmt in ("png", "tiff", "tif", "webp"):
        kw["exif"] = img.exif
    if fmt == "png":
        if img.text:
            info = PngImagePlugin.PngInfo()
            for k, v in img.text.items():
                info.add_itxt(k, v)
            kw["pnginfo"] = info
        if "transparency" in pil.info:
            kw["transparency"] = pil.info["transparency"]
    if fmt == "webp":
        if pil.mode not in ("RGB", "RGBA"):
            raise ShvcError(f"WebP cannot hold a {pil.mode} image losslessly; use PNG.")
        kw.update(lossless=True, quality=100, method=4)
    if fmt in ("tiff", "tif"):
        kw["compression"] = "tiff_adobe_deflate"
    if fmt == "bmp" and pil.mode not in ("1", "L", "P", "RGB"):
        raise ShvcError(f"BMP cannot hold a {pil.mode} image; use PNG.")
    buf = io.BytesIO()
    pil.save(buf, format=WRITE_FORMATS[fmt], **kw)
    return buf.getvalue()


def save_image(img: LoadedImage, path: Path, fmt: str | None = None, force: bool = False) -> None:
    fmt = fmt or Path(path).suffix.lstrip(".").lower() or "png"
    atomic_write(Path(path), encode_image(img, fmt), force)
