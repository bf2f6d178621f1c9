"""Image-level codec: image file <-> .shvc file (see docs/ARCHITECTURE.md for the contract).

compress: image_io (pixels + metadata) -> split by pixel format -> tiling (64x64 patches, constant
pad never coded) -> bits-back coder with the integer model -> container -> atomic write.
decompress runs it backwards and checks the pixel checksum before anything is written.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import container, image_io, tiling
from .entropy import bitsback
from .errors import FormatError, IntegrityError, ShvcError
from .image_io import LoadedImage
from .progress import ProgressCallback, check_cancel, emit
from .weights import find_model_by_sha256, load_model

DEFAULT_GROUP = 64
SMALL_PATCH = 32        # images no larger than this on both sides are coded in tiles of this size
MODES_CHANNELS = {"1": 1, "L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4, "RGB;16": 3, "RGBA;16": 4,
                  "I;16": 1, "I": 1, "F": 1, "CMYK": 4}


@dataclass
class CompressResult:
    src: Path | None
    dst: Path | None
    width: int
    height: int
    mode: str
    method: str
    variant: str
    n_bytes: int
    original_bytes: int
    bpd: float                    # 8 * file bytes / (channels * W * H)
    model_bpd: float              # model payload bits / coded sub-pixels (0 without the model)
    initial_bits: int
    neg_elbo_bpd: float
    seconds: float
    bits_map: np.ndarray | None   # (H, W) float32: -log2 p per pixel, channels summed

    @property
    def overhead_fraction(self) -> float:
        return self.initial_bits / max(1, 8 * self.n_bytes)


@dataclass
class DecompressResult:
    src: Path | None
    dst: Path | None
    header: container.Header
    seconds: float


_threads_done = False


def configure_threads() -> None:
    """Honour SHVC_THREADS (torch's CPU threads for networks and tables) once per process."""
    global _threads_done
    if not _threads_done:
        n = os.environ.get("SHVC_THREADS")
        if n and n.isdigit() and int(n) > 0:
            torch.set_num_threads(int(n))
        _threads_done = True


def resolve_device(device: str = "auto") -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ShvcError("No CUDA GPU is available; use --device cpu or auto.")
    return device


def default_variant(model) -> str:
    if model.hp.deterministic:
        return "det"
    return "arib" if model.hp.split < model.hp.blocks else "shvc"


def channels_of(mode: str) -> int:
    return MODES_CHANNELS.get(mode, 3)


def compress_image(img: LoadedImage, *, model=None, variant: str | None = None, device: str = "auto",
                   batch_size: int | None = None, progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None, original_bytes: int = 0) -> tuple[bytes, CompressResult]:
    configure_threads()
    t0 = time.perf_counter()
    w, h = img.size
    rgb, embedded, method = image_io.split_for_coding(img)
    header = container.Header(w, h, img.mode, method, source_format=img.source_format, bit_depth=img.bit_depth,
                              icc=img.icc, exif=img.exif, text=dict(img.text), info=dict(img.info),
                              pixel_crc=image_io.pixel_checksum(img))
    streams = [b"", embedded or b""]
    bits_map = None
    model_bpd = elbo = 0.0
    if rgb is not None:
        if model is None:
            model = load_model(variant=variant)
        variant = variant or default_variant(model)
        group = batch_size or DEFAULT_GROUP
        model = model_for_size(model, w, h)
        patches, valid, grid = tiling.to_patches(rgb, model.hp.patch)
        enc = bitsback.encode_patches(
            model, patches, valid, variant, group_size=group, net_batch=batch_size, device=resolve_device(device),
            progress=lambda d, n: emit(progress, "compress", d, n, f"patch {d}/{n}"), cancel=cancel,
            version=container.VERSION)
        r = enc.report
        header.model_id, header.weights_sha256, header.variant = model.name, model.sha256, variant
        header.patch, header.group_size, header.n_patches = model.hp.patch, group, len(patches)
        header.total_bits, header.initial_bits, header.neg_elbo_bits = r.total_bits, r.initial_bits, r.neg_elbo_bits
        streams[0] = enc.payload
        bits_map = tiling.from_patches(r.bits_map[:, None], grid, h, w)[..., 0]
        model_bpd, elbo = r.total_bits / r.n_dims, r.neg_elbo_bits / r.n_dims
    check_cancel(cancel, "Compression")
    data = container.write_container(header, streams)
    result = CompressResult(None, None, w, h, img.mode, method, header.variant, len(data), original_bytes,
                            8 * len(data) / (channels_of(img.mode) * w * h), model_bpd, header.initial_bits, elbo,
                            time.perf_counter() - t0, bits_map)
    return data, result


def model_for_size(model, w: int, h: int):
    """The model coding tiles of SMALL_PATCH when the whole image fits in one (the networks then
    run on a quarter of the pixels of a padded 64x64 tile), else the model as it is."""
    if max(w, h) <= SMALL_PATCH < model.hp.patch:
        try:
            return model.with_patch(SMALL_PATCH)
        except ValueError:                     # the model's latent hierarchy needs larger tiles
            pass
    return model


def _model_for(header: container.Header, model=None):
    if model is not None and getattr(model, "sha256", None) == header.weights_sha256:
        return model
    return find_model_by_sha256(header.weights_sha256)


def decompress_bytes(data: bytes, *, model=None, device: str = "auto", batch_size: int | None = None,
                     progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> tuple[LoadedImage, container.Header]:
    configure_threads()
    header, streams = container.read_container(data)
    if len(streams) != 2:
        raise FormatError("The file is corrupt (it does not hold the two expected streams).")
    rgb = None
    if header.method in (image_io.METHOD_MODEL, image_io.METHOD_MODEL_ALPHA):
        m = _model_for(header, model)
        if header.patch == SMALL_PATCH and m.hp.patch > SMALL_PATCH:
            m = model_for_size(m, header.width, header.height)
        if m.hp.patch != header.patch or header.n_patches != int(np.prod(tiling.grid_of(header.height, header.width, header.patch))):
            raise FormatError("The file is corrupt (its patch layout does not fit the image).")
        if header.group_size < 1 or header.variant not in bitsback.VARIANTS:
            raise FormatError("The file is corrupt (bad coding parameters).")
        valid = tiling.valid_extents(header.height, header.width, header.patch)
        try:
            patches = bitsback.decode_patches(
                m, streams[0], valid, header.variant, group_size=header.group_size,
                net_batch=batch_size, device=resolve_device(device),
                progress=lambda d, n: emit(progress, "decompress", d, n, f"patch {d}/{n}"), cancel=cancel,
                version=header.version)
        except ValueError as exc:
            raise FormatError(f"The file is corrupt ({exc}).") from None
        rgb = tiling.from_patches(patches, tiling.grid_of(header.height, header.width, header.patch),
                                  header.height, header.width)
    try:
        img = image_io.join_after_decoding(rgb, streams[1] or None, header.method, header=header)
    except (OSError, ValueError, SyntaxError) as exc:
        raise FormatError(f"The file is corrupt (its embedded image cannot be read: {exc}).") from None
    if image_io.pixel_checksum(img) != header.pixel_crc:
        raise IntegrityError("Decoding finished but the pixels do not match the checksum stored in the file; "
                             "nothing was written.")
    return img, header


def read_header(path_or_bytes) -> container.Header:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return container.read_header(bytes(path_or_bytes))
    return container.read_header_file(path_or_bytes)


def describe(h: container.Header, path: Path | None = None) -> dict:
    """What ``shvc info`` and the GUI show about a .shvc file (JSON-friendly)."""
    d = {"width": h.width, "height": h.height, "mode": h.mode, "method": h.method, "model": h.model_id,
         "weights_sha256": h.weights_sha256, "variant": h.variant, "patch": h.patch, "group_size": h.group_size,
         "patches": h.n_patches, "payload_bits": h.total_bits, "initial_bits": h.initial_bits,
         "model_ideal_bits": round(h.neg_elbo_bits, 1), "source_format": h.source_format,
         "bit_depth": h.bit_depth, "metadata": {"icc": len(h.icc or b""), "exif": len(h.exif or b""),
                                                "text": sorted(h.text), "info": sorted(h.info)}}
    if path is not None:
        size = Path(path).stat().st_size
        d.update(file=str(path), bytes=size, bpd=round(8 * size / (channels_of(h.mode) * h.width * h.height), 4))
    d["format_version"] = h.version
    return d


def _read(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError as exc:
        raise ShvcError(f"{path} cannot be read ({exc.strerror or exc}).") from None


def default_output(src: Path, out_dir: Path | None = None, suffix: str = ".shvc") -> Path:
    return (Path(out_dir) if out_dir else src.parent) / (src.stem + suffix)


def compress_file(src, dst=None, *, model=None, variant=None, device="auto", batch_size=None, force=False,
                  progress=None, cancel=None, img: LoadedImage | None = None) -> CompressResult:
    """Compress the image file ``src`` into ``dst`` (default: NAME.shvc beside it). ``img``: the
    already loaded ``src``, when the caller has it."""
    src = Path(src)
    dst = Path(dst) if dst else default_output(src)
    if dst.exists() and not force:
        raise ShvcError(f"{dst} already exists; use --force (or confirm) to replace it.")
    emit(progress, "read", 0, 1, src.name)
    if img is None:
        img = image_io.load_image(src)
    data, result = compress_image(img, model=model, variant=variant, device=device, batch_size=batch_size,
                                  progress=progress, cancel=cancel, original_bytes=src.stat().st_size)
    check_cancel(cancel, "Compression")
    image_io.atomic_write(dst, data, force=force)
    result.src, result.dst = src, dst
    return result


def decompress_file(src, dst=None, *, fmt=None, model=None, device="auto", batch_size=None, force=False,
                    progress=None, cancel=None) -> DecompressResult:
    t0 = time.perf_counter()
    src = Path(src)
    if fmt is None and dst is not None and Path(dst).suffix:
        fmt = Path(dst).suffix.lstrip(".")
    if fmt is None:                              # the first lossless format that holds the original's mode
        fmt = image_io.preferred_format(read_header(src).mode) or "png"
    fmt = fmt.lower()
    dst = Path(dst) if dst else default_output(src, suffix="." + fmt)
    if dst.exists() and not force:
        raise ShvcError(f"{dst} already exists; use --force (or confirm) to replace it.")
    img, header = decompress_bytes(_read(src), model=model, device=device, batch_size=batch_size,
                                   progress=progress, cancel=cancel)
    check_cancel(cancel, "Decompression")
    image_io.save_image(img, dst, fmt, force=force)
    return DecompressResult(src, dst, header, time.perf_counter() - t0)
