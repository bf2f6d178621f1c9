"""The pixel network over a band of rows of a whole level, in tiles with a halo.

A level of a 12-MP photo has sub-images of 3 M positions; its network parameters for all of them
(60 int64 per position) would take gigabytes. The coder asks instead for the parameters of a band
of rows (:mod:`.pyramid`), and this module evaluates the network on tiles of ``tile_rows`` rows,
each with ``radius`` rows of context above and below (the halo; clipped at the level's edges, where
the network pads as it does on the whole level). Every input a tile's rows read lies in the tile
and its halo, and the integer-exact network gives the same integers on any shape, so the result is
identical to evaluating the whole level at once, whatever the tile size or the number of tiles per
network call (tests/test_whole.py checks both).
"""

from __future__ import annotations

import threading
import time

import torch

from ..model.shvc import IntegerSHVC, pixel_centre
from ..progress import check_cancel
from .parallel import NETWORK_SECONDS


def receptive_radius(model: IntegerSHVC) -> int:
    """Rows (and columns) of context on either side of a position that the parameters of its pixel
    read: the kernels of the pixel network's layers (``ksize // 2`` each), plus one for the
    interpolation centre (``shvc.interpolation`` reads the next row and column)."""
    hp = model.hp
    names = [f"x_heads_{j}" for j in range(hp.blocks)] if hp.heads else ["x_net"]
    conv = max(sum(layer.ksize // 2 for layer in model.nets[name].layers) for name in names)
    return conv + (1 if hp.interp else 0)


def _tiles(a: int, b: int, tile_rows: int | None, radius: int, height: int):
    """(rows [t0, t1), input rows [lo, hi)) of each tile of rows [a, b) of a level ``height`` rows high."""
    step = (b - a) if tile_rows is None else max(1, tile_rows)
    for t0 in range(a, b, step):
        t1 = min(b, t0 + step)
        yield (t0, t1), (max(0, t0 - radius), min(height, t1 + radius))


def _calls(tiles: list, net_batch: int | None):
    """Tiles grouped into network calls: consecutive tiles of the same shape, ``net_batch`` at most."""
    group: list = []
    for tile in tiles:
        (t0, t1), (lo, hi) = tile
        shape = (t1 - t0, hi - lo, t0 - lo)
        if group and (shape != group[0][0] or (net_batch is not None and len(group) >= net_batch)):
            yield [t for _, t in group]
            group = []
        group.append((shape, tile))
    if group:
        yield [t for _, t in group]


def band_params(model: IntegerSHVC, X: torch.Tensor, j: int, a: int, b: int, radius: int,
                tile_rows: int | None = None, net_batch: int | None = None, device=None,
                stats: dict | None = None, cancel: threading.Event | None = None):
    """Pixel parameters of sub-image ``j`` in rows [a, b) of a level's sub-images ``X`` (BLOCKS, 3,
    rows, cols) uint8 (only sub-images < j are read): ``(logit, mu, ls, beta)`` each (1, 3, K, b - a,
    cols) int64 as :meth:`IntegerSHVC.pixel_params` gives them, and the centre (1, 3, b - a, cols) of
    :func:`shvc.pixel_centre` (None for models without one)."""
    device = device or torch.device("cpu")
    tiles = list(_tiles(a, b, tile_rows, radius, X.shape[-2]))
    parts = []
    for call in _calls(tiles, net_batch):
        check_cancel(cancel, "Coding")
        t_start = time.perf_counter()
        Xt = torch.stack([X[:, :, lo:hi] for _, (lo, hi) in call]).to(device=device, dtype=torch.int64)
        out = model.pixel_params(j, Xt, None)
        centre = pixel_centre(model.hp, Xt, j)
        if Xt.is_cuda:
            torch.cuda.synchronize()
        if stats is not None:
            stats[NETWORK_SECONDS] = stats.get(NETWORK_SECONDS, 0.0) + time.perf_counter() - t_start
        for i, ((t0, t1), (lo, _)) in enumerate(call):
            rows = slice(t0 - lo, t1 - lo)
            parts.append(tuple(None if t is None else t[i:i + 1, ..., rows, :] for t in (*out, centre)))
    return tuple(None if ts[0] is None else torch.cat(ts, dim=-2) for ts in zip(*parts))
