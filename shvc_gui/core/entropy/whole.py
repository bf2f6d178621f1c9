"""Whole-image coding with the deterministic model (format version 3, variant ``det``).

The image is one sub-pixel pyramid (:mod:`.pyramid`), not a grid of independent patches: each
sub-image is predicted from everything already decoded around it, across what used to be patch
borders, and the top of the pyramid is a handful of pixels per image.

Decoding order (the encoder pushes exactly the reverse): levels coarsest first; inside a level its
sub-images j in order (0..3 at the top, else 1..3); inside a sub-image every stream its stripe of
rows (:func:`pyramid.stripes`), band by band (:func:`pyramid.bands`), and inside a band the channels
0, 1, 2 (channel c's mean needs channels < c at the same position: ``shvc.channel_mean``). The pixel
parameters are ``IntegerSHVC.pixel_params(j, X, None)`` over the level's sub-images, evaluated in
tiles with a halo (:mod:`.halo`), so memory stays bounded and the bytes depend on neither the tile
size nor the network batch.

From format version 4 the payload starts with the values the image holds when they are few (a
colour list, or masks of each channel's levels: :mod:`.colours`), and every sub-pixel is coded among
the values they allow given the channels before it; from version 6 a colour list may come with how
often each colour occurs, and part of every table then goes by those counts (:func:`_choose_prior`).
Then come scale offsets: for every sub-image
of at least ``pyramid.TUNED_POSITIONS`` positions, per channel, integers added to the network's
log-scales (1/16 nat): in version 4 one for all its sub-pixels, from version 5 one per scale bucket
(the bucket of a sub-pixel is fixed by its mixture's weighted mean log-scale before the offset:
``payload.SCALE_EDGES``, ``mixture.scale_buckets``), and in version 5 the smaller sub-images share
one per channel (:func:`_choose_untuned`). The network is one model for every image; the
offsets fit its confidence to this one (a grainy photo wants wider distributions than the model
predicts, a clean render narrower, and how much differs between confident and unsure predictions).
The encoder picks each by the code length of a sample of the sub-image (:data:`OFFSETS`,
:func:`_choose_offsets`); the decoder only reads them.

Streams are independent rANS stacks (or whole-table stacks for small images: the coders of
:mod:`.rans` and :mod:`.ans` through the :class:`~.mixture.Coder` protocol). Each step (a level's
sub-image j) runs the streams on worker threads; the next step starts when all are done, because its
network reads sub-images < j across stripe borders. The payload is packed as a version-2 one with no
seed (:func:`payload.pack`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import FormatError, UsageError
from ..model.shvc import PIXEL_BINS, IntegerSHVC, channel_mean
from ..tiling import PAD_VALUE
from . import colours as allowed_values
from . import payload as pl
from . import pyramid as pyr
from .bitsback import Layout, Run, check_variant, records, stack_class
from .halo import band_params, receptive_radius
from .mixture import PREC, Mixture, scale_buckets
from .parallel import Progress, default_workers, timed_streams
from .rans import lanes_for

OFFSETS = (0, -2, 2, -4, 4, -6, 6, 8, 12, 16, 24)   # the encoder's candidates (ties: the earlier)
SAMPLE_POSITIONS = 1 << 14        # positions of a sub-image the encoder's choice looks at ...
SAMPLE_PIECES = 4                 # ... in this many row ranges spread over it


@dataclass
class ImageReport:
    total_bits: int               # size of the payload in bits
    initial_bits: int             # always 0: nothing is popped
    neg_elbo_bits: float          # the model's ideal code length (the pushed bits)
    bits_map: np.ndarray          # (H, W) float32: -log2 p(x) per pixel, channels summed
    n_dims: int                   # coded sub-pixels (3 H W)


@dataclass
class EncodedImage:
    payload: bytes
    report: ImageReport


@dataclass(frozen=True)
class _Job:
    """One direction's settled arguments, shared by every stream and step."""
    model: IntegerSHVC
    streams: int
    radius: int
    run: Run
    device: torch.device
    progress: Progress
    values: allowed_values.ColourSet | allowed_values.ChannelSets | None = None

    def params(self, X: torch.Tensor, j: int, a: int, b: int, stats: dict):
        return band_params(self.model, X, j, a, b, self.radius, self.run.tile_rows, self.run.net_batch,
                           self.device, stats, self.run.cancel)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(1, K, r, c) parameters -> (r * c, K) rows in row-major order."""
    return t[0].permute(1, 2, 0).reshape(-1, t.shape[1])


def _mixture(values, c: int, prev: list[torch.Tensor], mean, ls, logit, offsets, context=None) -> Mixture:
    """Channel ``c`` of a band, among the ``values`` allowed given its channels < c (``prev``) and its
    neighbours' colours (``context``, :meth:`colours.ColourSet.context`), its log-scales shifted by
    ``offsets``: one per scale bucket (:data:`payload.SCALE_EDGES`), or one for all."""
    mu, ls, logit = _rows(mean), _rows(ls), _rows(logit)
    support = None if values is None else values.support(c, prev, mu.shape[0], context)
    if len(offsets) == 1:
        ls = ls + offsets[0]
    else:
        ls = ls.cpu().numpy().astype(np.int64)
        ls += np.asarray(offsets, np.int64)[scale_buckets(ls, logit, pl.SCALE_EDGES)][:, None]
    return Mixture(mu, ls, logit, PIXEL_BINS, support)


def _costs(job: _Job, X, j: int, vw: int, pieces, buckets: int, stats: dict, candidates) -> np.ndarray:
    """Bits of the rows ``pieces`` [(a, b)] of sub-image ``j`` (its first ``vw`` columns) per channel,
    candidate and scale bucket: (3, len(candidates), buckets). A candidate is (the step's allowed
    values, a scale offset)."""
    cost = np.zeros((3, len(candidates), buckets))
    for a, b in pieces:
        logit, mu, ls, beta, centre = _band(job, X, j, a, b, vw, stats)
        xs = X[j, :, a:b, :vw].to(device=mu.device, dtype=torch.int64).unsqueeze(1)
        contexts = {}                          # the piece's neighbour colours, once per distinct values
        for values, _ in candidates:
            if id(values) not in contexts:
                contexts[id(values)] = None if values is None else values.context(X, a, b, vw)
        for c in range(3):
            mean = channel_mean(mu, beta, list(xs[:c]), c, exact=True, centre=centre)
            v = xs[c].reshape(-1).cpu().numpy()
            bucket = (scale_buckets(_rows(ls[:, c]), _rows(logit[:, c]), pl.SCALE_EDGES) if buckets > 1
                      else np.zeros(len(v), np.int64))
            for i, (values, d) in enumerate(candidates):
                m = _mixture(values, c, list(xs[:c]), mean, ls[:, c], logit[:, c], [d], contexts[id(values)])
                bits = PREC - np.log2(m.scaled_cdf(v + 1) - m.scaled_cdf(v))
                cost[c, i] += np.bincount(bucket, weights=bits, minlength=buckets)
    return cost


def _sample(level: pyr.Level, j: int, positions: int) -> list[tuple[int, int]]:
    """Row ranges [(a, b)] of sub-image ``j`` of ``level`` with about ``positions`` positions in all:
    the whole sub-image when it is no larger, else SAMPLE_PIECES ranges spread over it."""
    vh, vw = level.extent(j)
    if vh * vw <= positions:
        return [(0, vh)]
    rows = max(1, positions // SAMPLE_PIECES // vw)
    return sorted({(a, min(vh, a + rows)) for a in ((2 * i + 1) * vh // (2 * SAMPLE_PIECES)
                                                    for i in range(SAMPLE_PIECES))})


def _choose_offsets(job: _Job, values, X, level: pyr.Level, j: int, buckets: int, stats: dict) -> list[list[int]]:
    """The encoder's scale offsets of tuned sub-image ``j`` of ``level`` (allowed ``values``): per
    channel, per scale bucket the best of :data:`OFFSETS` by the code length of a sample of it
    (SAMPLE_PIECES row ranges, about SAMPLE_POSITIONS positions in all)."""
    cost = _costs(job, X, j, level.extent(j)[1], _sample(level, j, SAMPLE_POSITIONS), buckets, stats,
                  [(values, d) for d in OFFSETS])
    return [[OFFSETS[i] for i in cost[c].argmin(axis=0)] for c in range(3)]


def _choose_prior(job: _Job, images: list[torch.Tensor], pyramid: list[pyr.Level], colours: np.ndarray,
                  weights: np.ndarray, before: dict, stats: dict) -> pl.Prior | None:
    """The encoder's prior for a colour list (version 6): per channel the best share of
    :data:`colours.PRIOR_SHARES` by the code length of a sample of the finest level's sub-images
    (about SAMPLE_POSITIONS positions in all, scale offsets 0; ``before``: the pairs coded before
    each step, :func:`_pairs_before`); None when every channel's best is 0."""
    shares = allowed_values.PRIOR_SHARES
    lists = [allowed_values.ColourSet(colours, pl.Prior(weights, np.full(3, s))) for s in shares]
    level = pyramid[0]
    cost = np.zeros((3, len(shares), 1))
    for j in level.blocks:
        vh, vw = level.extent(j)
        if vh * vw:
            pieces = _sample(level, j, SAMPLE_POSITIONS // len(level.blocks))
            candidates = [(v.at_step(j, before.get((level.n, j))), 0) for v in lists]
            cost += _costs(job, images[level.n], j, vw, pieces, 1, stats, candidates)
    best = np.array([shares[int(i)] for i in cost[:, :, 0].argmin(axis=1)], np.int64)
    return pl.Prior(weights, best) if best.any() else None


def _choose_untuned(job: _Job, values, images: list[torch.Tensor], pyramid: list[pyr.Level],
                    stats: dict) -> list[int]:
    """The encoder's one scale offset per channel for every untuned sub-image (version 5): the best of
    :data:`OFFSETS` by the code length of all of them (together fewer than about 22,000 positions);
    ``values(n, j)``: the allowed values of sub-image j of level n."""
    cost = np.zeros((3, len(OFFSETS), 1))
    for level, j in _steps(pyramid):
        vh, vw = level.extent(j)
        if vh * vw and not pyr.tuned(level, j):
            step_values = values(level.n, j)
            cost += _costs(job, images[level.n], j, vw, [(0, vh)], 1, stats, [(step_values, d) for d in OFFSETS])
    return [OFFSETS[int(cost[c, :, 0].argmin())] for c in range(3)]


def _band(job: _Job, X, j, a, b, vw, stats):
    """The parameters of sub-image j in rows [a, b), cropped to its first ``vw`` columns."""
    logit, mu, ls, beta, centre = job.params(X, j, a, b, stats)
    crop = (lambda t: None if t is None else t[..., :vw])
    return crop(logit), crop(mu), crop(ls), crop(beta), crop(centre)


def _encode_part(job: _Job, values, st, X, level: pyr.Level, j: int, offsets, rows, bmap: np.ndarray,
                 stats: dict) -> None:
    """Push sub-image j of ``level`` in the stripe ``rows`` of one stream (bands and channels backwards)
    among its allowed ``values``, its log-scales shifted by ``offsets`` (per channel: one per scale
    bucket, or one)."""
    vh, vw = level.extent(j)
    view = pyr.image_view(bmap, level, j)
    for a, b in reversed(pyr.bands(*rows, level.cols)):
        b = min(b, vh)
        if a >= b or not vw:
            continue
        logit, mu, ls, beta, centre = _band(job, X, j, a, b, vw, stats)
        xs = X[j, :, a:b, :vw].to(device=mu.device, dtype=torch.int64).unsqueeze(1)     # (3, 1, r, vw)
        means = [channel_mean(mu, beta, list(xs[:c]), c, exact=True, centre=centre) for c in range(3)]
        context = None if values is None else values.context(X, a, b, vw)
        runs = [(xs[c].reshape(-1), _mixture(values, c, list(xs[:c]), means[c], ls[:, c], logit[:, c], offsets[c],
                                             context))
                for c in range(3)]
        bits = sum(st.push(sym.cpu(), m) for sym, m in reversed(runs))
        view[a:b, :vw] = bits.view(b - a, vw).numpy()
        job.progress.add((b - a) * vw)


def _decode_part(job: _Job, values, st, X, level: pyr.Level, j: int, offsets, rows, stats: dict) -> None:
    """Pop sub-image j of ``level`` in the stripe ``rows`` of one stream into ``X`` (in place), among
    its allowed ``values``, its log-scales shifted by ``offsets``."""
    vh, vw = level.extent(j)
    for a, b in pyr.bands(*rows, level.cols):
        b = min(b, vh)
        if a >= b or not vw:
            continue
        logit, mu, ls, beta, centre = _band(job, X, j, a, b, vw, stats)
        prev, context = [], None if values is None else values.context(X, a, b, vw)
        for c in range(3):
            mean = channel_mean(mu, beta, prev, c, exact=True, centre=centre)
            sym, _ = st.pop(_mixture(values, c, prev, mean, ls[:, c], logit[:, c], offsets[c], context))
            plane = sym.view(1, b - a, vw)
            X[j, c, a:b, :vw] = plane[0].to(torch.uint8)
            prev.append(plane.to(mu.device))
        job.progress.add((b - a) * vw)


def _steps(pyramid: list[pyr.Level]) -> list[tuple[pyr.Level, int]]:
    """(level, sub-image) in decoding order: coarsest level first, sub-images in order."""
    return [(level, j) for level in reversed(pyramid) for j in level.blocks]


def _pairs_before(values, images: list[torch.Tensor], steps: list[tuple[pyr.Level, int]]) -> dict:
    """{(level, j): the (neighbour colour, colour) pairs of every step before it} in decoding order,
    for a colour list that conditions its counts on neighbours (:meth:`colours.ColourSet.pairs`)."""
    out, pairs = {}, values.no_pairs()
    for level, j in steps:
        out[level.n, j] = pairs
        pairs = pairs + values.pairs(images[level.n], j, *level.extent(j))
    return out


def _whole(layout: Layout | str) -> Layout:
    """A variant name means the newest format version."""
    return Layout(layout, version=pl.VERSIONS[-1]) if isinstance(layout, str) else layout


def _prepare(model: IntegerSHVC, layout: Layout, run: Run, total: int, streams: int,
             values=None) -> _Job:
    check_variant(model, layout.variant)
    if not pl.whole_image(layout.version, layout.variant):
        raise UsageError(f"format version {layout.version} with variant {layout.variant!r} codes patches")
    if model.hp.k != pyr.K:
        raise UsageError(f"the whole-image coder needs a model with k = {pyr.K}")
    if (run.tile_rows is not None and run.tile_rows < 1) or (run.net_batch is not None and run.net_batch < 1):
        raise UsageError("tile_rows and net_batch must be >= 1")
    dev = torch.device(run.device)
    return _Job(model.to(dev), streams, receptive_radius(model), run, dev, Progress(total, run.progress),
                values)


def _run_step(job: _Job, stats: dict, part) -> None:
    """``part(stream, own_stats)`` for every stream on worker threads; returns when all are done."""
    timed_streams(stats, part, list(range(job.streams)), job.run.workers or default_workers(job.streams))


def encode_image(model: IntegerSHVC, rgb: np.ndarray, layout: Layout | str = "det", run: Run | None = None,
                 **options) -> EncodedImage:
    """Code a uint8 image (H, W, 3) as one pyramid. ``layout`` (:class:`~.bitsback.Layout`, or a
    variant name; its version must code whole images, :func:`payload.whole_image`) is what the file
    fixes: the streams (default :func:`payload.auto_streams`) and rANS lanes (default
    :func:`~.rans.lanes_for` of :func:`payload.symbols_per_lane`); ``run`` (:class:`~.bitsback.Run`) what may differ at decode (device,
    tile rows, tiles per network call, workers, cancel, progress, stats); fields as keywords too."""
    layout, run = records(_whole(layout), run, options)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise UsageError("the image must be a uint8 array of shape (H, W, 3), H and W >= 1")
    h, w = rgb.shape[:2]
    n_dims = 3 * h * w
    streams = layout.streams or pl.auto_streams(n_dims)
    lanes = (lanes_for(n_dims // streams, pl.symbols_per_lane(layout.version, layout.variant))
             if layout.lanes is None else layout.lanes)
    adaptive = pl.tuned(layout.version, layout.variant)           # version 4: allowed values and scale offsets
    buckets = pl.offset_buckets(layout.version)
    colours, masks = allowed_values.choose(rgb) if adaptive else (None, None)
    job = _prepare(model, layout, run, h * w, streams, allowed_values.allowed(colours, masks))
    stats = {} if run.stats is None else run.stats
    pyramid = pyr.levels(h, w)
    images = pyr.split_all(torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1), pyramid)
    prior, before = None, {}
    if colours is not None and layout.version >= pl.PRIOR_VERSION:
        if len(colours) <= allowed_values.CONTEXT_COLOURS:
            before = _pairs_before(job.values, images, _steps(pyramid))
        prior = _choose_prior(job, images, pyramid, colours, allowed_values.colour_weights(rgb, colours), before,
                              stats)
        job = replace(job, values=allowed_values.allowed(colours, masks, prior))

    def values(n: int, j: int):                            # the allowed values of sub-image j of level n
        return None if job.values is None else job.values.at_step(j, before.get((n, j)))

    stacks = [stack_class(layout.version, lanes).start(None, lanes) for _ in range(streams)]
    bmap = np.zeros((h, w), np.float32)
    tuned = []                                             # offsets of the tuned sub-images, last first
    untuned = [0, 0, 0]
    if adaptive and layout.version >= pl.BUCKETED_VERSION:
        untuned = _choose_untuned(job, values, images, pyramid, stats)
    for level, j in reversed(_steps(pyramid)):
        X, stripes = images[level.n], pyr.stripes(level.rows, streams)
        offsets = [[d] for d in untuned]
        step_values = values(level.n, j)
        if adaptive and pyr.tuned(level, j):
            offsets = _choose_offsets(job, step_values, X, level, j, buckets, stats)
            tuned.append(offsets)
        _run_step(job, stats, lambda s, own: _encode_part(job, step_values, stacks[s], X, level, j, offsets,
                                                          stripes[s], bmap, own))
    data = pl.pack([(0, st.finish(0)) for st in stacks], lanes, layout.version)
    if adaptive:
        chosen = pl.ScaleOffsets(np.array(untuned), np.array(tuned[::-1], np.int64).reshape(-1, 3, buckets))
        data = pl.pack_values(colours, masks, prior) + pl.pack_offsets(chosen, layout.version) + data
    report = ImageReport(total_bits=8 * len(data), initial_bits=0,
                         neg_elbo_bits=float(sum(st.pushed_bits for st in stacks)), bits_map=bmap, n_dims=n_dims)
    return EncodedImage(data, report)


def decode_image(model: IntegerSHVC, payload: bytes, height: int, width: int, layout: Layout | str = "det",
                 run: Run | None = None, **options) -> np.ndarray:
    """Inverse of :func:`encode_image`: the uint8 image (height, width, 3). The payload's stream
    table is taken as it is (``codec.check_streams`` has checked it against the image size)."""
    layout, run = records(_whole(layout), run, options)
    colours = masks = prior = None
    offsets = pl.ScaleOffsets(np.zeros(3, np.int64), np.zeros((0, 3, 1), np.int64))
    adaptive = pl.tuned(layout.version, layout.variant)
    if adaptive:
        colours, masks, prior, offsets, payload = pl.split_tuning(payload, pyr.tuned_steps(height, width),
                                                                  layout.version)
    count = pl.stream_count(payload)
    lanes, words = pl.unpack(payload, count, layout.version)
    if count < 1 or any(prefix for prefix, _ in words):
        raise FormatError("The compressed stream is corrupt (bad stream table).")
    job = _prepare(model, layout, run, height * width, count, allowed_values.allowed(colours, masks, prior))
    stats = {} if run.stats is None else run.stats
    stacks = [stack_class(layout.version, lanes).resume(ws, 0, lanes) for _, ws in words]
    cur, tuned, untuned = None, iter(offsets.tuned.tolist()), [[d] for d in offsets.untuned.tolist()]
    contextual = job.values is not None and job.values.contextual()
    pairs = job.values.no_pairs() if contextual else None
    for level in reversed(pyr.levels(height, width)):
        X = torch.full((pyr.BLOCKS, 3, level.rows, level.cols), PAD_VALUE, dtype=torch.uint8)
        if not level.top:
            X[0] = cur
        stripes = pyr.stripes(level.rows, count)
        for j in level.blocks:
            step_offsets = next(tuned) if adaptive and pyr.tuned(level, j) else untuned
            values = None if job.values is None else job.values.at_step(j, pairs)
            _run_step(job, stats, lambda s, own: _decode_part(job, values, stacks[s], X, level, j, step_offsets,
                                                              stripes[s], own))
            if contextual:
                pairs = pairs + job.values.pairs(X, j, *level.extent(j))
        cur = pyr.join(X, level)
    for st in stacks:
        st.check_finished(np.zeros(0, np.uint32))
    return np.ascontiguousarray(cur.permute(1, 2, 0).numpy())
