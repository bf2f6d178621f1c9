"""Bits-back ANS coding of 3xPxP patches with an integer-exact SHVC model.

Patches move through every step in groups (one network call per step for the whole group, cut
into ``net_batch`` pieces that do not change any result). All groups share one ANS stack: group g
pops its latents from the bits that groups < g pushed (chaining), so only the first group draws
initial bits from a seed. The seed is random words under the stack; the part of it that no pop ever
reached is cut from the file (the decoder never reads it), the part that was reached is the
initial-bit overhead and stays in the file.

Coding order of one group (encoder; the decoder runs it backwards):

* ``shvc``: pop z1 ~ q(z1|x_1:s); push x ~ p(x|z1); for i=1..L-1: pop z_i+1 ~ q, push z_i ~ p(z_i|z_i+1);
  push zL ~ p(zL).
* ``arib``: push x_s+1: ~ p(x_s+1:|x_1:s) first, which supplies the bits for popping z1; then as
  ``shvc`` with x_1:s.
* ``det``: the deterministic model; push every level of the sub-pixel pyramid, no pops.

Within a pushed tensor the order is sub-image j = 1..k*k, then channel, so the decoder can pop
sub-image by sub-image ("local reverse encoding"). Pixels outside ``valid`` are never coded.

Payload (little-endian u32 words): ``count`` streams, [version >= 2: ``lanes`` of the rANS coder],
``count`` x (seed words cut from the bottom, stream length), then the streams back to back.
"""

from __future__ import annotations

import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import FormatError, UsageError
from ..model.layers import subpixel, subpixel_inverse
from ..progress import check_cancel
from ..model.shvc import PIXEL_BINS, Z_BINS, IntegerSHVC, channel_mean, pixel_centre
from ..tiling import PAD_VALUE
from .ans import TableStack
from .rans import RansStack, lanes_for

VARIANTS = ("shvc", "arib", "det")
CPU_NET_BATCH = 16                # patches per network call on the CPU (the unfold path slows down past it)
MAX_POP_BITS = 24                 # no popped symbol costs more (both coders: tables of 2^20, >= 1 each)
VERSIONS = (1, 2)                 # format versions whose payloads this module codes
LATEST = max(VERSIONS)


def _stack_class(version: int, lanes: int):
    """Version 1: whole tables (constriction). Version 2: the pointwise rANS lanes, or whole
    tables for a stream too small for lanes (``lanes`` 0)."""
    return RansStack if version >= 2 and lanes else TableStack


@dataclass
class PatchReport:
    total_bits: int               # size of the payload in bits
    initial_bits: int             # seed bits the first pops consumed (in the file, never paid back)
    neg_elbo_bits: float          # ideal code length: sum of push bits - sum of pop bits
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


NETWORK_SECONDS = "network_s"      # ``stats`` keys: thread-seconds in network calls, ...
STREAM_SECONDS = "stream_s"        # ... and in whole streams (network + tables + ANS), summed over threads


def stage_seconds(stats: dict, wall: float) -> dict:
    """Split ``wall`` seconds of an encode or decode into network and coding (tables + ANS) in the
    proportion of the thread-seconds in ``stats`` (streams run in parallel, so thread-seconds add
    up to more than the wall time)."""
    busy = stats.get(STREAM_SECONDS, 0.0)
    net = stats.get(NETWORK_SECONDS, 0.0)
    f = wall / busy if busy else 0.0
    return {"network": net * f, "coding": (busy - net) * f}


def default_net_batch(device: torch.device, group_size: int) -> int:
    """Patches per network call: the whole group on a GPU, CPU_NET_BATCH on the CPU."""
    return group_size if device.type == "cuda" else min(group_size, CPU_NET_BATCH)


@contextmanager
def _threads_split(workers: int):
    """Give each of ``workers`` stream threads an equal share of torch's CPU threads, so that
    workers x torch threads does not exceed the threads given (oversubscribed, 2 streams on 2 cores
    encoded 10-22 % slower); torch's setting is process-wide and is restored afterwards. Two coding
    calls at once in one process (the GUI's compress and open) may then see each other's share:
    that changes their speed, never their results."""
    total = torch.get_num_threads()
    share = max(1, total // max(1, workers))
    if share != total:
        torch.set_num_threads(share)
    try:
        yield
    finally:
        if share != total:
            torch.set_num_threads(total)


def _timed_streams(stats: dict, fn, items, workers: int) -> list:
    """``fn(item, own_stats)`` for every stream on ``workers`` threads; their seconds add into ``stats``."""
    def run(item):
        own, t0 = {}, time.perf_counter()
        out = fn(item, own)
        own[STREAM_SECONDS] = time.perf_counter() - t0
        return out, own
    workers = max(1, min(workers, len(items)))
    with _threads_split(workers):
        results = _map(run, items, workers)
    for _, own in results:
        for key, value in own.items():
            stats[key] = stats.get(key, 0.0) + value
    return [out for out, _ in results]


def _batched(stats: dict, fn, net_batch: int, *tensors):
    """Apply ``fn`` to slices of the batch axis and concatenate; exact, so slicing is free.
    Adds the seconds spent to ``stats[NETWORK_SECONDS]``."""
    t0 = time.perf_counter()
    n = tensors[0].shape[0]
    if n <= net_batch:
        out = fn(*tensors)
    else:
        outs = [fn(*(t[a:a + net_batch] if t is not None else None for t in tensors))
                for a in range(0, n, net_batch)]
        if isinstance(outs[0], tuple):
            out = tuple(torch.cat(parts, dim=0) for parts in zip(*outs))
        else:
            out = torch.cat(outs, dim=0)
    if tensors[0].is_cuda:
        torch.cuda.synchronize()
    stats[NETWORK_SECONDS] = stats.get(NETWORK_SECONDS, 0.0) + time.perf_counter() - t0
    return out


def _flat_k(t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(G, K, h, w) -> (S, K) rows in (G, h, w) order, masked positions only."""
    rows = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    return rows if mask is None else rows[mask.reshape(-1)]


def _flat_z(t: torch.Tensor) -> torch.Tensor:
    """(G, C, h, w) latent parameters -> (S, 1) rows in (G, C, h, w) order."""
    return t.reshape(-1, 1)


class _Group:
    """The tensors of one group of patches, and the code that moves them through the stack."""

    def __init__(self, model: IntegerSHVC, stack: "TableStack | RansStack", valid: torch.Tensor, patch: int,
                 net_batch: int, device: torch.device, stats: dict, cancel: threading.Event | None = None):
        self.m, self.st, self.hp, self.stats, self.cancel = model, stack, model.hp, stats, cancel
        self.net_batch, self.device = net_batch, device
        g = valid.shape[0]
        rows = torch.arange(patch).view(1, patch, 1)
        cols = torch.arange(patch).view(1, 1, patch)
        mask = (rows < valid[:, 0].view(-1, 1, 1)) & (cols < valid[:, 1].view(-1, 1, 1))
        self.mask = mask.unsqueeze(1).to(device)                        # (G, 1, P, P)
        self.index = torch.arange(patch * patch, device=device).view(1, 1, patch, patch).expand(g, 1, patch, patch)
        self.bits = torch.zeros(g, patch * patch, dtype=torch.float64)

    # --- pixels ---------------------------------------------------------------------------
    def _net(self, fn, net_batch, *tensors):
        """A network call over the group (checks for cancellation first: a group can take seconds)."""
        check_cancel(self.cancel, "Coding")
        return _batched(self.stats, fn, net_batch, *tensors)

    def _pixel_units(self, X, idx_blocks, mask_blocks, j, z1):
        """Parameters of sub-image j for every channel, given the full X (encoder only)."""
        logit, mu, ls, beta = self._net(lambda a, b: self.m.pixel_params(j, a, b), self.net_batch, X, z1)
        xs, centre = X[:, j], pixel_centre(self.hp, X, j)
        return [(c, channel_mean(mu, beta, [xs[:, i] for i in range(c)], c, exact=True, centre=centre), ls[:, c],
                 logit[:, c]) for c in range(3)]

    def _record(self, bits, idx, mask):
        sel = idx.reshape(idx.shape[0], -1)
        m = mask.reshape(mask.shape[0], -1)
        rows = torch.arange(sel.shape[0]).view(-1, 1).expand_as(sel)[m.cpu()]
        self.bits.index_put_((rows, sel[m].cpu()), bits, accumulate=True)

    def push_pixels(self, X, blocks, idxb, maskb, z1):
        """Push sub-images ``blocks`` of X (all channels) in decode order."""
        units = []
        for j in blocks:
            for c, mu, ls, logit in self._pixel_units(X, idxb, maskb, j, z1):
                m = maskb[:, j, 0]
                units.append((X[:, j, c][m], _flat_k(mu, m), _flat_k(ls, m), _flat_k(logit, m), idxb[:, j, 0], m))
        for sym, mu, ls, logit, idx, m in reversed(units):
            self._record(self.st.push(sym, mu, ls, logit, PIXEL_BINS), idx, m)

    def pop_pixels(self, X, blocks, idxb, maskb, z1):
        """Pop sub-images ``blocks`` into X (in place), sub-image by sub-image, channel by channel."""
        for j in blocks:
            logit, mu, ls, beta = self._net(lambda a, b: self.m.pixel_params(j, a, b), self.net_batch, X, z1)
            m = maskb[:, j, 0]
            prev, centre = [], pixel_centre(self.hp, X, j)
            for c in range(3):
                mc = channel_mean(mu, beta, prev, c, exact=True, centre=centre)
                sym, _ = self.st.pop(_flat_k(mc, m), _flat_k(ls[:, c], m), _flat_k(logit[:, c], m), PIXEL_BINS)
                plane = X[:, j, c]
                plane[m] = sym.to(plane.device)
                prev.append(plane)

    # --- latents --------------------------------------------------------------------------
    def _prior_params(self, i, j, G, above):
        return self._net(lambda a, b: self.m.prior_z(i, j, a, b), self.net_batch, G, above)

    def push_prior(self, i, z, above):
        """Push z_i ~ p(z_i | z_i+1) (all sub-images; teacher-forced parameters)."""
        G = subpixel(z, self.hp.k)
        units = []
        for j in range(self.hp.blocks):
            mu, ls = self._prior_params(i, j, G, above)
            units.append((G[:, j].reshape(-1), _flat_z(mu), _flat_z(ls)))
        for sym, mu, ls in reversed(units):
            self.st.push(sym, mu, ls, None, Z_BINS)

    def pop_prior(self, i, shape, above):
        g, cz, h, w = shape
        k = self.hp.k
        G = torch.zeros(g, k * k, cz, h // k, w // k, dtype=torch.int64, device=self.device)
        for j in range(self.hp.blocks):
            mu, ls = self._prior_params(i, j, G, above)
            sym, _ = self.st.pop(_flat_z(mu), _flat_z(ls), None, Z_BINS)
            G[:, j] = sym.view(G[:, j].shape).to(self.device)
        return subpixel_inverse(G, k)

    def posterior(self, i, src):
        """(mu, ls) of q(z_i | .) from x sub-images (i = 1) or z_{i-1}."""
        if i == 1:
            return self._net(self.m.posterior_z1, self.net_batch, src)
        return self._net(lambda a: self.m.posterior_z(i - 1, a), self.net_batch, src)

    def pop_posterior(self, i, src):
        mu, ls = self.posterior(i, src)
        sym, _ = self.st.pop(_flat_z(mu), _flat_z(ls), None, Z_BINS)
        return sym.view(mu.shape).to(self.device)

    def push_posterior(self, i, src, z):
        mu, ls = self.posterior(i, src)
        self.st.push(z.reshape(-1), _flat_z(mu), _flat_z(ls), None, Z_BINS)

    # --- whole group ----------------------------------------------------------------------
    def _layout(self):
        k = self.hp.k
        return subpixel(self.index, k), subpixel(self.mask, k)

    def _pyramid_layout(self):
        """Per level (top first): (index blocks, mask blocks) of the deterministic pyramid."""
        k = self.hp.k
        levels, idx, msk = [], self.index, self.mask
        while True:
            ib, mb = subpixel(idx, k), subpixel(msk, k)
            levels.append((ib, mb))
            if ib.shape[-1] == 1 or ib.shape[-1] % k:
                return levels[::-1]
            idx, msk = ib[:, 0], mb[:, 0]

    def encode(self, x: torch.Tensor, variant: str) -> None:
        hp, k = self.hp, self.hp.k
        if variant == "det":
            levels = self._pyramid_layout()
            cur, images = x, []
            for _ in levels:
                X = subpixel(cur, k)
                images.append(X)
                cur = X[:, 0]
            images = images[::-1]
            units = []                              # push bottom level first: decoder pops top first
            for n, ((ib, mb), X) in enumerate(zip(levels, images)):
                units.append((X, range(0 if n == 0 else 1, hp.blocks), ib, mb))
            for X, blocks, ib, mb in reversed(units):
                self.push_pixels(X, blocks, ib, mb, None)
            return
        idxb, maskb = self._layout()
        X = subpixel(x, k)
        s = hp.split if variant == "arib" else hp.blocks
        if s < hp.blocks:
            self.push_pixels(X, range(s, hp.blocks), idxb, maskb, None)
        zs = [self.pop_posterior(1, X)]
        self.push_pixels(X, range(0, s), idxb, maskb, zs[0])
        for i in range(1, hp.latent_layers):
            zs.append(self.pop_posterior(i + 1, zs[i - 1]))
            self.push_prior(i, zs[i - 1], zs[i])
        self.push_prior(hp.latent_layers, zs[-1], None)

    def decode(self, shape, variant: str) -> torch.Tensor:
        hp, k = self.hp, self.hp.k
        g, _, p, _ = shape
        if variant == "det":
            cur = None
            for n, (ib, mb) in enumerate(self._pyramid_layout()):
                h = ib.shape[-1]
                X = torch.full((g, hp.blocks, 3, h, h), PAD_VALUE, dtype=torch.int64, device=self.device)
                if n:
                    X[:, 0] = cur
                self.pop_pixels(X, range(0 if n == 0 else 1, hp.blocks), ib, mb, None)
                cur = subpixel_inverse(X, k)
            return cur
        idxb, maskb = self._layout()
        cz = hp.z_channels
        sizes = [p // k ** i for i in range(1, hp.latent_layers + 1)]
        zs = [None] * hp.latent_layers
        zs[-1] = self.pop_prior(hp.latent_layers, (g, cz, sizes[-1], sizes[-1]), None)
        for i in range(hp.latent_layers - 1, 0, -1):
            zs[i - 1] = self.pop_prior(i, (g, cz, sizes[i - 1], sizes[i - 1]), zs[i])
            self.push_posterior(i + 1, zs[i - 1], zs[i])
        X = torch.full((g, hp.blocks, 3, p // k, p // k), PAD_VALUE, dtype=torch.int64, device=self.device)
        s = hp.split if variant == "arib" else hp.blocks
        self.pop_pixels(X, range(0, s), idxb, maskb, zs[0])
        self.push_posterior(1, X, zs[0])
        if s < hp.blocks:
            self.pop_pixels(X, range(s, hp.blocks), idxb, maskb, None)
        return subpixel_inverse(X, k)


def _pop_bound(model: IntegerSHVC, n: int, variant: str) -> int:
    """Upper bound on the seed words every pop of ``n`` patches could consume."""
    if variant == "det":
        return 0
    hp = model.hp
    per_patch = sum(hp.z_channels * (hp.patch // hp.k ** i) ** 2 for i in range(1, hp.latent_layers + 1))
    return (per_patch * n * MAX_POP_BITS) // 32 + 64


def _seed_words(count: int) -> np.ndarray:
    return np.random.default_rng(0x5EC0).integers(1, 2 ** 32, size=count, dtype=np.uint32)


def _groups(n: int, group_size: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + group_size)) for a in range(0, n, group_size)]


def _setup(model, patches, valid, variant, group_size, net_batch, dev):
    """Checked arguments of both directions: (valid extents as a tensor, net_batch resolved)."""
    check_variant(model, variant)
    net_batch = default_net_batch(dev, group_size) if net_batch is None else net_batch
    if group_size < 1 or net_batch < 1:
        raise UsageError("group_size and net_batch must be >= 1")
    p = model.hp.patch
    if patches is not None and tuple(patches.shape[1:]) != (3, p, p):
        raise UsageError(f"patches must have shape (N, 3, {p}, {p})")
    valid = torch.as_tensor(np.asarray(valid), dtype=torch.int64).view(-1, 2)
    if valid.numel() and (valid.min() < 1 or valid.max() > p):
        raise UsageError("valid extents must be in 1..patch")
    return valid, net_batch


def _stream_ranges(n: int, streams: int, group_size: int) -> list[tuple[int, int]]:
    """Split ``n`` patches into ``streams`` contiguous ranges of whole groups."""
    groups = _groups(n, group_size)
    streams = max(1, min(streams, len(groups)))
    per = -(-len(groups) // streams)
    return [(groups[a][0], groups[min(len(groups), a + per) - 1][1]) for a in range(0, len(groups), per)]


STREAM_SUBPIXELS = 12_000_000      # auto_streams: about this many coded sub-pixels per stream


def auto_streams(n_dims: int) -> int:
    """Independent ANS streams for ``n_dims`` coded sub-pixels: one per STREAM_SUBPIXELS (a 4167x2880
    photo gets 4), at most 64. More streams decode on more threads, but each costs its lanes'
    start-up bits, so more streams mean narrower lanes, which decode slower
    (:func:`shvc_gui.core.entropy.rans.lanes_for`)."""
    return max(1, min(64, -(-n_dims // STREAM_SUBPIXELS)))


class _Progress:
    """Thread-safe progress across streams."""

    def __init__(self, total: int, callback):
        self.total, self.callback, self.done, self.lock = total, callback, 0, threading.Lock()

    def add(self, k: int) -> None:
        if self.callback is None:
            return
        with self.lock:
            self.done += k
            done = self.done
        self.callback(done, self.total)


def _map(fn, items, workers: int):
    if workers <= 1 or len(items) <= 1:
        return [fn(it) for it in items]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _encode_stream(model, x_all, valid, variant, group_size, net_batch, dev, prog, cancel, stats, version, lanes):
    n, p = x_all.shape[0], model.hp.patch
    seed = _seed_words(_pop_bound(model, n, variant)) if variant != "det" else None
    st = _stack_class(version, lanes).start(seed, lanes)
    bits_map = np.zeros((n, p, p), dtype=np.float32)
    for a, b in _groups(n, group_size):
        grp = _Group(model, st, valid[a:b], p, net_batch, dev, stats, cancel)
        x = x_all[a:b].to(dev)
        x = torch.where(grp.mask, x, torch.full_like(x, PAD_VALUE))
        grp.encode(x, variant)
        bits_map[a:b] = grp.bits.view(b - a, p, p).numpy()
        prog.add(b - a)
    seed_len = 0 if seed is None else len(seed)
    prefix = st.cut(seed_len)
    return prefix, st.finish(prefix), 32 * (seed_len - prefix), st.pushed_bits - st.popped_bits, bits_map


def encode_patches(model: IntegerSHVC, patches: np.ndarray, valid: np.ndarray, variant: str,
                   group_size: int = 64, net_batch: int | None = None, device: str = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   cancel: threading.Event | None = None, stats: dict | None = None,
                   streams: int | None = None, workers: int | None = None,
                   version: int = LATEST, lanes: int | None = None) -> EncodedPatches:
    """Code uint8 patches (N, 3, P, P); pixels outside ``valid`` (N, 2) are not coded.

    The patches are cut into ``streams`` independent ANS streams (default :func:`auto_streams`),
    coded by ``workers`` threads (default: as many as streams, at most torch's thread count, which
    SHVC_THREADS sets; the workers share torch's threads); ``net_batch`` patches go through each
    network call (default :func:`default_net_batch`). All of these are free to differ at decode
    time except ``streams``, which the payload records. ``version``: the format
    version whose coder writes the payload (:data:`VERSIONS`; tests write older ones); ``lanes``:
    the rANS lanes of version 2 (default :func:`shvc_gui.core.entropy.rans.lanes_for`, 0: tables).
    ``stats``, when given, receives thread-seconds in network calls (``NETWORK_SECONDS``) and in
    whole streams (``STREAM_SECONDS``; the rest of a stream's time is tables + ANS)."""
    stats = {} if stats is None else stats
    dev = torch.device(device)
    valid, net_batch = _setup(model, patches, valid, variant, group_size, net_batch, dev)
    model = model.to(dev)
    n = patches.shape[0]
    x_all = torch.from_numpy(np.ascontiguousarray(patches)).to(torch.int64)
    if version not in VERSIONS:
        raise UsageError(f"no coder for format version {version}")
    n_dims = int(3 * valid.prod(dim=1).sum())
    ranges = _stream_ranges(n, streams or auto_streams(n_dims), group_size)
    lanes = lanes_for(n_dims // max(1, len(ranges))) if lanes is None else lanes
    prog = _Progress(n, progress)
    workers = workers or min(len(ranges), torch.get_num_threads())
    parts = _timed_streams(stats, lambda r, own: _encode_stream(model, x_all[r[0]:r[1]], valid[r[0]:r[1]], variant,
                                                                group_size, net_batch, dev, prog, cancel, own,
                                                                version, lanes), ranges, workers)
    head = [struct.pack("<I", len(parts))] + ([struct.pack("<I", lanes)] if version >= 2 else [])
    head += [struct.pack("<II", prefix, len(words)) for prefix, words, *_ in parts]
    payload = b"".join(head) + b"".join(words.astype("<u4").tobytes() for _, words, *_ in parts)
    report = PatchReport(total_bits=8 * len(payload), initial_bits=sum(pt[2] for pt in parts),
                         neg_elbo_bits=sum(pt[3] for pt in parts),
                         bits_map=np.concatenate([pt[4] for pt in parts]) if parts else np.zeros((0, 1, 1), np.float32),
                         n_dims=n_dims)
    return EncodedPatches(payload, report)


def _decode_stream(model, payload_words, prefix, valid, variant, group_size, net_batch, dev, prog, cancel, stats,
                   version, lanes):
    n, p = valid.shape[0], model.hp.patch
    seed_len = _pop_bound(model, n, variant)
    if prefix > seed_len:
        raise FormatError("The compressed stream is corrupt (impossible seed length).")
    st = _stack_class(version, lanes).resume(payload_words, prefix, lanes)
    out = np.empty((n, 3, p, p), dtype=np.uint8)
    for a, b in reversed(_groups(n, group_size)):
        grp = _Group(model, st, valid[a:b], p, net_batch, dev, stats, cancel)
        x = grp.decode((b - a, 3, p, p), variant)
        out[a:b] = x.clamp(0, 255).to(torch.uint8).cpu().numpy()
        prog.add(b - a)
    start = _seed_words(seed_len) if variant != "det" else np.zeros(0, np.uint32)
    start[:prefix] = 0
    st.check_finished(start)
    return out


def _read_payload(payload: bytes, n_ranges: int, version: int):
    """(lanes, [(prefix, words)] per stream) from a payload, every length checked."""
    if version not in VERSIONS:
        raise FormatError(f"The file is corrupt (no coder for format version {version}).")
    if len(payload) < 4 or len(payload) % 4:
        raise FormatError("The compressed stream is truncated.")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    count, pos, lanes = int(words[0]), 1, 0
    if version >= 2:
        if len(words) < 2:
            raise FormatError("The compressed stream is truncated.")
        lanes, pos = int(words[1]), 2
    if count != n_ranges or len(words) < pos + 2 * count:
        raise FormatError("The compressed stream is corrupt (bad stream table).")
    table = words[pos:pos + 2 * count].reshape(count, 2).astype(np.int64)
    body = words[pos + 2 * count:]
    if int(table[:, 1].sum()) != len(body):
        raise FormatError("The compressed stream is truncated or corrupt (stream lengths do not add up).")
    ends = np.cumsum(table[:, 1])
    return lanes, [(int(prefix), body[end - length:end]) for (prefix, length), end in zip(table, ends)]


def decode_patches(model: IntegerSHVC, payload: bytes, valid: np.ndarray, variant: str,
                   group_size: int = 64, net_batch: int | None = None, device: str = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   cancel: threading.Event | None = None, stats: dict | None = None,
                   workers: int | None = None, version: int = LATEST) -> np.ndarray:
    """Inverse of :func:`encode_patches`: returns uint8 (N, 3, P, P), padding filled with PAD_VALUE.
    ``version``: the format version of the file (it names the coder)."""
    stats = {} if stats is None else stats
    dev = torch.device(device)
    valid, net_batch = _setup(model, None, valid, variant, group_size, net_batch, dev)
    n = valid.shape[0]
    ranges = _stream_ranges(n, _stream_count(payload), group_size) if n else []
    lanes, streams = _read_payload(payload, len(ranges), version)
    model = model.to(dev)
    prog = _Progress(n, progress)
    workers = workers or min(len(ranges), torch.get_num_threads())
    outs = _timed_streams(stats, lambda i, own: _decode_stream(model, streams[i][1], streams[i][0],
                                                               valid[ranges[i][0]:ranges[i][1]], variant, group_size,
                                                               net_batch, dev, prog, cancel, own, version, lanes),
                          list(range(len(ranges))), workers)
    return np.concatenate(outs) if outs else np.empty((0, 3, model.hp.patch, model.hp.patch), np.uint8)


def _stream_count(payload: bytes) -> int:
    if len(payload) < 4:
        raise FormatError("The compressed stream is truncated.")
    return struct.unpack_from("<I", payload)[0]
