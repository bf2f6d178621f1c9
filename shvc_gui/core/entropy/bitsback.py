"""Bits-back ANS coding of 3xPxP patches with an integer-exact SHVC model: the public entry points.

Patches move through every step in groups (one network call per step for the whole group, cut
into ``net_batch`` pieces that do not change any result). All groups of a stream share one ANS
stack: group g pops its latents from the bits that groups < g pushed (chaining), so only the first
group draws initial bits from a seed. The seed is random words under the stack; the part of it that
no pop ever reached is cut from the file (the decoder never reads it), the part that was reached is
the initial-bit overhead and stays in the file.

The work is shared out over modules with one job each:

* :mod:`.order` — the coding order of one group, as (encode, decode) steps; decoding is the steps
  backwards;
* :mod:`.payload` — groups, streams, seeds and the payload's bytes;
* :mod:`.parallel` — stream threads, batched network calls, progress and timing;
* :mod:`.mixture` — the integer entropy model the coders (:mod:`.rans`, :mod:`.ans`) take.

Two records carry the arguments: :class:`Layout`, what the file fixes (variant, group size, format
version, rANS lanes, streams), and :class:`Run`, what may differ at decode (device, network batch,
worker threads, cancel, progress, timing stats).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from typing import Callable

import numpy as np
import torch

from ..errors import FormatError, UsageError
from ..runtime import VARIANTS
from ..model.shvc import IntegerSHVC
from ..tiling import PAD_VALUE
from . import payload as pl
from .ans import TableStack
from .order import Group, bits_map, decode_group, encode_group
from .parallel import Progress, default_workers, timed_streams
from .payload import PATCH_VERSION, VERSIONS, auto_streams
from .rans import RansStack, lanes_for

CPU_NET_BATCH = 16                # patches per network call on the CPU (the unfold path slows down past it)


@dataclass(frozen=True)
class Layout:
    """What the file fixes: the decoder must use the encoder's values. ``lanes`` and ``streams`` are
    the encoder's choice (None: chosen from the size) and are read back from the payload."""
    variant: str
    group_size: int = 64
    version: int = PATCH_VERSION
    lanes: int | None = None
    streams: int | None = None


@dataclass(frozen=True)
class Run:
    """What may differ between encode and decode without changing a bit: the device, patches per
    network call (None: :func:`default_net_batch`; the whole-image coder: tiles per call), rows per
    network tile of the whole-image coder (None: a whole band, :mod:`.whole`), worker threads
    (None: one per stream, at most torch's threads), cancellation, progress ``(done, total)`` and a
    ``stats`` dict that receives thread-seconds (``NETWORK_SECONDS``, ``STREAM_SECONDS``)."""
    device: str = "cpu"
    net_batch: int | None = None
    tile_rows: int | None = None
    workers: int | None = None
    cancel: threading.Event | None = None
    progress: Callable[[int, int], None] | None = None
    stats: dict | None = None


_LAYOUT_FIELDS = {f.name for f in fields(Layout)} - {"variant"}
_RUN_FIELDS = {f.name for f in fields(Run)}


def records(layout: Layout | str, run: Run | None, options: dict) -> tuple[Layout, Run]:
    """The two records from a Layout (or a variant name) and a Run, with any of their fields given
    as keywords on top (``encode_patches(model, x, valid, "det", group_size=16)``)."""
    unknown = set(options) - _LAYOUT_FIELDS - _RUN_FIELDS
    if unknown:
        raise UsageError(f"unknown argument(s): {', '.join(sorted(unknown))}")
    layout = Layout(layout) if isinstance(layout, str) else layout
    layout = replace(layout, **{k: v for k, v in options.items() if k in _LAYOUT_FIELDS})
    run = replace(run or Run(), **{k: v for k, v in options.items() if k in _RUN_FIELDS})
    return layout, run


@dataclass
class PatchReport:
    total_bits: int               # size of the payload in bits
    initial_bits: int             # bits-back overhead: seed bits that stayed in the file
    neg_elbo_bits: float          # the model's ideal code length (pushed minus popped bits)
    bits_map: np.ndarray          # (N, P, P) float32: -log2 p(x) per pixel, channels summed
    n_dims: int                   # coded sub-pixels


@dataclass
class EncodedPatches:
    payload: bytes
    report: PatchReport


def check_variant(model: IntegerSHVC, variant: str) -> None:
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if (variant == "det") != model.hp.deterministic:
        kind = "deterministic" if model.hp.deterministic else "latent-variable"
        raise UsageError(f"variant {variant!r} does not fit a {kind} model")
    if variant == "arib" and model.hp.split >= model.hp.blocks:
        raise UsageError("variant 'arib' needs a model trained with an ArIB split")


def default_net_batch(device: torch.device, group_size: int) -> int:
    """Patches per network call: the whole group on a GPU, CPU_NET_BATCH on the CPU."""
    return group_size if device.type == "cuda" else min(group_size, CPU_NET_BATCH)


def stack_class(version: int, lanes: int):
    """Version 1: whole tables (constriction). Version 2: the pointwise rANS lanes, or whole
    tables for a stream too small for lanes (``lanes`` 0)."""
    return RansStack if version >= 2 and lanes else TableStack


@dataclass(frozen=True)
class _Job:
    """One direction's settled arguments, shared by every stream."""
    model: IntegerSHVC
    layout: Layout
    lanes: int
    device: torch.device
    net_batch: int
    cancel: threading.Event | None
    progress: Progress


def _check(model, patches, valid, layout: Layout, run: Run):
    """Checked arguments of both directions: (valid extents as a tensor, device, net_batch)."""
    check_variant(model, layout.variant)
    dev = torch.device(run.device)
    net_batch = default_net_batch(dev, layout.group_size) if run.net_batch is None else run.net_batch
    if pl.whole_image(layout.version, layout.variant):
        raise UsageError(f"format version {layout.version} codes det images whole (entropy.whole), not in patches")
    if layout.group_size < 1 or net_batch < 1:
        raise UsageError("group_size and net_batch must be >= 1")
    p = model.hp.patch
    if patches is not None and tuple(patches.shape[1:]) != (3, p, p):
        raise UsageError(f"patches must have shape (N, 3, {p}, {p})")
    valid = torch.as_tensor(np.asarray(valid), dtype=torch.int64).view(-1, 2)
    if valid.numel() and (valid.min() < 1 or valid.max() > p):
        raise UsageError("valid extents must be in 1..patch")
    return valid, dev, net_batch


def _encode_stream(job: _Job, x_all: torch.Tensor, valid: torch.Tensor, stats: dict):
    model, variant, p = job.model, job.layout.variant, job.model.hp.patch
    n = x_all.shape[0]
    seed = pl.seed_words(pl.pop_bound(model.hp, n, variant)) if variant != "det" else None
    st = stack_class(job.layout.version, job.lanes).start(seed, job.lanes)
    bmap = np.zeros((n, p, p), dtype=np.float32)
    for a, b in pl.groups(n, job.layout.group_size):
        grp = Group(model, st, valid[a:b], p, job.net_batch, job.device, stats, job.cancel)
        x = x_all[a:b].to(job.device)
        x = torch.where(grp.mask, x, torch.full_like(x, PAD_VALUE))
        encode_group(grp, x, variant)
        bmap[a:b] = bits_map(grp)
        job.progress.add(b - a)
    seed_len = 0 if seed is None else len(seed)
    prefix = st.cut(seed_len)
    return prefix, st.finish(prefix), 32 * (seed_len - prefix), st.pushed_bits - st.popped_bits, bmap


def encode_patches(model: IntegerSHVC, patches: np.ndarray, valid: np.ndarray, layout: Layout | str,
                   run: Run | None = None, **options) -> EncodedPatches:
    """Code uint8 patches (N, 3, P, P); pixels outside ``valid`` (N, 2) are not coded.

    ``layout`` (:class:`Layout`, or a variant name) is what the file fixes, ``run`` (:class:`Run`)
    what may differ at decode; any of their fields may also be given as keywords. The patches are
    cut into ``layout.streams`` independent ANS streams (default :func:`payload.auto_streams`), coded
    by ``run.workers`` threads that share torch's threads; ``layout.version`` is the format version
    whose coder writes the payload (:data:`VERSIONS`; tests write older ones); ``layout.lanes`` the
    rANS lanes of version 2 (default :func:`shvc_gui.core.entropy.rans.lanes_for`, 0: tables)."""
    layout, run = records(layout, run, options)
    stats = {} if run.stats is None else run.stats
    valid, dev, net_batch = _check(model, patches, valid, layout, run)
    model = model.to(dev)
    n = patches.shape[0]
    x_all = torch.from_numpy(np.ascontiguousarray(patches)).to(torch.int64)
    if layout.version not in VERSIONS:
        raise UsageError(f"no coder for format version {layout.version}")
    n_dims = int(3 * valid.prod(dim=1).sum())
    ranges = pl.stream_ranges(n, layout.streams or auto_streams(n_dims), layout.group_size)
    lanes = lanes_for(n_dims // max(1, len(ranges))) if layout.lanes is None else layout.lanes
    job = _Job(model, layout, lanes, dev, net_batch, run.cancel, Progress(n, run.progress))
    parts = timed_streams(stats, lambda r, own: _encode_stream(job, x_all[r[0]:r[1]], valid[r[0]:r[1]], own),
                          ranges, run.workers or default_workers(len(ranges)))
    data = pl.pack([(prefix, words) for prefix, words, *_ in parts], lanes, layout.version)
    report = PatchReport(total_bits=8 * len(data), initial_bits=sum(pt[2] for pt in parts),
                         neg_elbo_bits=sum(pt[3] for pt in parts),
                         bits_map=np.concatenate([pt[4] for pt in parts]) if parts else np.zeros((0, 1, 1), np.float32),
                         n_dims=n_dims)
    return EncodedPatches(data, report)


def _decode_stream(job: _Job, words: np.ndarray, prefix: int, valid: torch.Tensor, stats: dict) -> np.ndarray:
    model, variant, p = job.model, job.layout.variant, job.model.hp.patch
    n = valid.shape[0]
    seed_len = pl.pop_bound(model.hp, n, variant)
    if prefix > seed_len:
        raise FormatError("The compressed stream is corrupt (impossible seed length).")
    st = stack_class(job.layout.version, job.lanes).resume(words, prefix, job.lanes)
    out = np.empty((n, 3, p, p), dtype=np.uint8)
    for a, b in reversed(pl.groups(n, job.layout.group_size)):
        grp = Group(model, st, valid[a:b], p, job.net_batch, job.device, stats, job.cancel)
        x = decode_group(grp, variant)
        out[a:b] = x.clamp(0, 255).to(torch.uint8).cpu().numpy()
        job.progress.add(b - a)
    start = pl.seed_words(seed_len) if variant != "det" else np.zeros(0, np.uint32)
    start[:prefix] = 0
    st.check_finished(start)
    return out


def decode_patches(model: IntegerSHVC, payload: bytes, valid: np.ndarray, layout: Layout | str,
                   run: Run | None = None, **options) -> np.ndarray:
    """Inverse of :func:`encode_patches`: returns uint8 (N, 3, P, P), padding filled with PAD_VALUE.
    ``layout``: the variant, group size and format version of the file (its streams and lanes are
    read from the payload); ``run`` and keywords as for :func:`encode_patches`."""
    layout, run = records(layout, run, options)
    stats = {} if run.stats is None else run.stats
    valid, dev, net_batch = _check(model, None, valid, layout, run)
    n = valid.shape[0]
    ranges = pl.stream_ranges(n, pl.stream_count(payload), layout.group_size) if n else []
    lanes, streams = pl.unpack(payload, len(ranges), layout.version)
    model = model.to(dev)
    job = _Job(model, layout, lanes, dev, net_batch, run.cancel, Progress(n, run.progress))
    outs = timed_streams(stats, lambda i, own: _decode_stream(job, streams[i][1], streams[i][0],
                                                              valid[ranges[i][0]:ranges[i][1]], own),
                         list(range(len(ranges))), run.workers or default_workers(len(ranges)))
    return np.concatenate(outs) if outs else np.empty((0, 3, model.hp.patch, model.hp.patch), np.uint8)
