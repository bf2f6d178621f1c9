"""Image-level codec: image file <-> .shvc file (see docs/ARCHITECTURE.md for the contract).

compress: image_io (pixels + metadata) -> split by pixel format -> the integer model's coder: the
deterministic variant codes the whole image as one pyramid (format version 3, entropy/whole.py), the
latent variants 64x64 patches (tiling, constant pad never coded; entropy/bitsback.py) -> container ->
atomic write.
decompress runs it backwards and checks the pixel checksum before anything is written.

torch, the model and the coder are imported only when pixels are coded, so reading a header
(``read_header``, ``describe``: ``shvc info``, the GUI's viewer) stays cheap.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import container, image_io, modes, tiling
from .errors import ExistsError, FormatError, IntegrityError, ShvcError
from .image_io import LoadedImage
from .progress import ProgressCallback, check_cancel, emit
from .runtime import VARIANTS, configure_threads, default_variant, resolve_device

DEFAULT_GROUP = 64
SMALL_PATCH = 32        # images no larger than this on both sides are coded in tiles of this size


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


def channels_of(mode: str) -> int:
    """Channels of ``mode`` (:func:`modes.channels`: no default; an unknown mode is a KeyError)."""
    return modes.channels(mode)


def compress_image(img: LoadedImage, *, model=None, variant: str | None = None, device: str = "auto",
                   batch_size: int | None = None, progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None, original_bytes: int = 0) -> tuple[bytes, CompressResult]:
    from .entropy import bitsback, payload, whole
    from .weights import load_model
    configure_threads()
    t0 = time.perf_counter()
    w, h = img.size
    rgb, embedded, method = image_io.split_for_coding(img)
    pixel_crc = image_io.pixel_checksum(img)
    header = container.Header(w, h, img.mode, method, source_format=img.source_format, bit_depth=img.bit_depth,
                              icc=img.icc, exif=img.exif, text=dict(img.text), info=dict(img.info),
                              pixel_crc=pixel_crc, rebuild_crc=image_io.rebuild_checksum(img, pixel_crc))
    streams = [b"", embedded or b""]
    bits_map = None
    model_bpd = elbo = 0.0
    if rgb is not None:
        if model is None:
            model = load_model(variant=variant)
        variant = variant or default_variant(model.hp)
        whole_image = payload.whole_image(container.VERSION, variant)
        run = bitsback.Run(resolve_device(device), batch_size, cancel=cancel,
                           progress=_coder_progress(progress, "compress", whole_image))
        if whole_image:
            enc = whole.encode_image(model, rgb, bitsback.Layout(variant, version=container.VERSION), run)
            bits_map = enc.report.bits_map
        else:
            group = batch_size or DEFAULT_GROUP
            model = model_for_size(model, w, h)
            patches, valid, grid = tiling.to_patches(rgb, model.hp.patch)
            enc = bitsback.encode_patches(model, patches, valid, bitsback.Layout(variant, group, container.VERSION),
                                          run)
            header.patch, header.group_size, header.n_patches = model.hp.patch, group, len(patches)
            bits_map = tiling.from_patches(enc.report.bits_map[:, None], valid, grid, h, w)[..., 0]
        r = enc.report
        header.model_id, header.weights_sha256, header.variant = model.name, model.sha256, variant
        header.total_bits, header.initial_bits, header.neg_elbo_bits = r.total_bits, r.initial_bits, r.neg_elbo_bits
        streams[0] = enc.payload
        model_bpd, elbo = r.total_bits / r.n_dims, r.neg_elbo_bits / r.n_dims
    check_cancel(cancel, "Compression")
    data = container.write_container(header, streams)
    result = CompressResult(None, None, w, h, img.mode, method, header.variant, len(data), original_bytes,
                            modes.bits_per_dimension(len(data), img.mode, w, h), model_bpd, header.initial_bits, elbo,
                            time.perf_counter() - t0, bits_map)
    return data, result


def _coder_progress(progress, stage: str, whole_image: bool):
    """The coder's (done, total) as progress events: pixels of a whole image (version 3 ``det``),
    else patches."""
    unit = "pixel" if whole_image else "patch"
    return lambda d, n: emit(progress, stage, d, n, f"{unit} {d}/{n}")


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
    from .weights import find_model_by_sha256
    return find_model_by_sha256(header.weights_sha256)


def _expected_streams(header: container.Header, n_dims: int) -> int:
    """Sub-streams the encoder of the file's version wrote: version 1 one per 4 groups, later ones
    one per 12 M coded sub-pixels (:func:`payload.auto_streams`); at most 64."""
    from .entropy import payload
    if header.version == 1:
        return max(1, min(64, -(-header.n_patches // (4 * header.group_size))))
    return payload.auto_streams(n_dims)


def _stream_bounds(header: container.Header, n_dims: int, pop_bound) -> list[int | None]:
    """The most seed words each sub-stream may start from, one entry per sub-stream the encoder
    wrote (None: not known without the model). Whole images (version 3 ``det``) pop nothing and
    have no patches; patch payloads have the patch grid of the image."""
    from .entropy import payload as layout
    if layout.whole_image(header.version, header.variant):
        if (header.patch, header.group_size, header.n_patches) != (0, 0, 0):
            raise FormatError("The file is corrupt (its patch layout does not fit the image).")
        return [0] * layout.auto_streams(n_dims)
    if header.group_size < 1 or header.variant not in VARIANTS or header.patch < 1:
        raise FormatError("The file is corrupt (bad coding parameters).")
    grid = tiling.grid_of(header.height, header.width, header.patch)
    if header.n_patches != grid[0] * grid[1]:
        raise FormatError("The file is corrupt (its patch layout does not fit the image).")
    ranges = layout.stream_ranges(header.n_patches, _expected_streams(header, n_dims), header.group_size)
    return [None if pop_bound is None else pop_bound(b - a) for a, b in ranges]


def check_streams(header: container.Header, streams: list[bytes], pop_bound=None) -> None:
    """Refuse, before any decoding, streams that cannot hold what the header claims: the two streams
    of its method (an unused one empty), and a model payload whose sub-stream count and rANS lanes
    are the ones the encoder writes for an image of the claimed size (so decoding time follows the
    bytes in the file, never a header's claim; docs/FORMAT.md). ``pop_bound(n)``: the most seed
    words ``n`` patches may start from (:func:`payload.pop_bound` of the model)."""
    if len(streams) != 2:
        raise FormatError("The file is corrupt (it does not hold the two expected streams).")
    payload, embedded = streams
    model_used = header.method in container.MODEL_METHODS
    if bool(payload) != model_used or bool(embedded) != (header.method != container.METHOD_MODEL):
        raise FormatError("The file is corrupt (its streams do not fit its coding method).")
    if not model_used:
        return
    from .entropy.rans import MAX_LANES, lanes_for
    if header.variant not in VARIANTS:
        raise FormatError("The file is corrupt (bad coding parameters).")
    n_dims = 3 * header.width * header.height
    bounds = _stream_bounds(header, n_dims, pop_bound)
    from .entropy import payload as layout
    from .entropy.pyramid import tuned_steps
    if layout.tuned(header.version, header.variant):
        payload = layout.split_tuning(payload, tuned_steps(header.height, header.width), header.version)[-1]
    words = np.frombuffer(payload[:len(payload) - len(payload) % 4], "<u4")
    head = 2 if header.version >= 2 else 1
    if len(payload) % 4 or len(words) < head:
        raise FormatError("The compressed stream is truncated.")
    count = int(words[0])
    if count != len(bounds):
        raise FormatError("The file is corrupt (its compressed stream count does not fit the image).")
    if len(words) < head + 2 * count:
        raise FormatError("The compressed stream is truncated.")
    table = words[head:head + 2 * count].reshape(count, 2).astype(np.int64)
    lanes = int(words[1]) if header.version >= 2 else 0
    per_lane = layout.symbols_per_lane(header.version, header.variant)
    if header.version >= 2 and (lanes > MAX_LANES or lanes != lanes_for(n_dims // count, per_lane)):
        raise FormatError("The file is corrupt (its rANS lane count does not fit the image).")
    if int(table[:, 1].sum()) != len(words) - head - 2 * count or (table[:, 1] < 2 * lanes).any():
        raise FormatError("The compressed stream is truncated or corrupt (stream lengths do not add up).")
    if any(bound is not None and int(p) > bound for p, bound in zip(table[:, 0], bounds)):
        raise FormatError("The compressed stream is corrupt (impossible seed length).")


def decompress_bytes(data: bytes, *, model=None, device: str = "auto", batch_size: int | None = None,
                     progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> tuple[LoadedImage, container.Header]:
    configure_threads()
    header, streams = container.read_container(data)
    check_streams(header, streams)
    rgb = None
    if header.method in modes.MODEL_METHODS:
        rgb = _decode_pixels(header, streams, model, device, batch_size, progress, cancel)
    try:
        img = image_io.join_after_decoding(rgb, streams[1] or None, header.method, header=header)
    except (OSError, ValueError, SyntaxError) as exc:
        raise FormatError(f"The file is corrupt (its embedded image cannot be read: {exc}).") from None
    pixel_crc = image_io.pixel_checksum(img)
    if pixel_crc != header.pixel_crc or (header.rebuild_crc is not None
                                         and image_io.rebuild_checksum(img, pixel_crc) != header.rebuild_crc):
        raise IntegrityError("Decoding finished but the pixels do not match the checksum stored in the file; "
                             "nothing was written.")
    return img, header


def _decode_pixels(header: container.Header, streams: list[bytes], model, device, batch_size, progress,
                   cancel) -> np.ndarray:
    """The RGB pixels (H, W, 3) of a model payload: the whole image (version 3 ``det``) or patches."""
    from .entropy import bitsback, payload, whole
    m = _model_for(header, model)
    layout = bitsback.Layout(header.variant, header.group_size, header.version)
    whole_image = payload.whole_image(header.version, header.variant)
    run = bitsback.Run(resolve_device(device), batch_size, cancel=cancel,
                       progress=_coder_progress(progress, "decompress", whole_image))
    try:
        if whole_image:
            return whole.decode_image(m, streams[0], header.height, header.width, layout, run)
        if header.patch == SMALL_PATCH and m.hp.patch > SMALL_PATCH:
            m = model_for_size(m, header.width, header.height)
        if m.hp.patch != header.patch:
            raise FormatError("The file is corrupt (its patch layout does not fit the image).")
        check_streams(header, streams, lambda n: payload.pop_bound(m.hp, n, header.variant))
        valid = tiling.valid_extents(header.height, header.width, header.patch)
        patches = bitsback.decode_patches(m, streams[0], valid, layout, run)
    except ValueError as exc:
        raise FormatError(f"The file is corrupt ({exc}).") from None
    return tiling.from_patches(patches, valid, tiling.grid_of(header.height, header.width, header.patch),
                               header.height, header.width)


def read_header(path_or_bytes) -> container.Header:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return container.read_header(bytes(path_or_bytes))
    return container.read_header_file(path_or_bytes)


describe = container.describe       # what `shvc info` and the GUI show about a .shvc file


def _read(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError as exc:
        raise ShvcError(f"{path} cannot be read ({exc.strerror or exc}).") from None


def default_output(src: Path, out_dir: Path | None = None, suffix: str = ".shvc") -> Path:
    return (Path(out_dir) if out_dir else src.parent) / (src.stem + suffix)


def _output(src: Path, dst, suffix: str) -> Path:
    """``dst``, or NAME``suffix`` inside it when it names an existing folder (as ``cp`` does)."""
    if dst is None:
        return default_output(src, suffix=suffix)
    dst = Path(dst)
    return default_output(src, dst, suffix) if dst.is_dir() else dst


def compress_file(src, dst=None, *, model=None, variant=None, device="auto", batch_size=None, force=False,
                  progress=None, cancel=None, img: LoadedImage | None = None) -> CompressResult:
    """Compress the image file ``src`` into ``dst`` (default: NAME.shvc beside it). ``img``: the
    already loaded ``src``, when the caller has it."""
    src = Path(src)
    dst = _output(src, dst, ".shvc")
    if dst.exists() and not force:
        raise ExistsError(dst)
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
    if dst is not None and Path(dst).is_dir():
        dst = Path(dst) / src.stem                # a folder: NAME.FORMAT inside it
        dst = dst.with_name(dst.name + "." + (fmt or image_io.preferred_format(read_header(src).mode) or "png"))
    if fmt is None and dst is not None and Path(dst).suffix:
        fmt = Path(dst).suffix.lstrip(".")
    if fmt is None:                              # the first lossless format that holds the original's mode
        fmt = image_io.preferred_format(read_header(src).mode) or "png"
    fmt = fmt.lower()
    dst = Path(dst) if dst else default_output(src, suffix="." + fmt)
    if dst.exists() and not force:
        raise ExistsError(dst)
    img, header = decompress_bytes(_read(src), model=model, device=device, batch_size=batch_size,
                                   progress=progress, cancel=cancel)
    check_cancel(cancel, "Decompression")
    image_io.save_image(img, dst, fmt, force=force)
    return DecompressResult(src, dst, header, time.perf_counter() - t0)
