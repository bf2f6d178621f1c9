"""The integer entropy model between the network and the coders: discretized logistic mixtures
over integer symbols, exact in integers on every machine.

The network hands the coder integer parameters on the fixed-point grids of
:mod:`shvc_gui.core.model.likelihoods` (mean in 1/16 symbol, log-scale in 1/16 nat, logits in 1/8
nat); :class:`Mixture` normalises them once (clamps, inverse-scale and weight lookups) and then
answers everything a coder asks:

* :meth:`Mixture.scaled_cdf` — the cumulative table at chosen symbols (the pointwise rANS coder of
  format version 2 pushes with two points per symbol);
* :meth:`Mixture.search` — the quantile search that finds the symbol owning a slot (its pops);
* :meth:`Mixture.tables` / :func:`integer_cdf` — whole probability tables (the constriction coder of
  format version 1 and small version-2 streams).

A :class:`Support` restricts a run's symbols to allowed sets (format version 4: the colours an image
holds, :mod:`.colours`): the mass of every value left out goes to the nearest allowed one, so each
allowed symbol costs no more than without the restriction, and a set of one symbol costs nothing.

The lookup tables are computed with :mod:`decimal` (correctly rounded), so encoder and decoder build
identical tables on every machine. Both coders take a :class:`Mixture` and share one declared
interface, :class:`Coder`. Float training losses stay in the model package
(:func:`shvc_gui.core.model.likelihoods.log_prob_float`).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Protocol

import numpy as np
import torch

from ..model.likelihoods import LOGIT_DEN, LOGIT_SPAN, LS_DEN, LS_MAX, LS_MIN, MU_DEN

INV_BITS = 20                     # inverse scale LUT: round(2^20 * exp(-ls/16))
T_BITS = INV_BITS + 4             # t = (edge - mu) / s in units of 2^-24 (mu in 1/16 = 2^-4)
SIG_STEP_BITS = 11                # sigmoid LUT step 1/2048 (65537 entries, no interpolation)
SIG_RANGE = 16                    # sigmoid LUT covers t in [-16, 16]
SIG_BITS = 16                     # sigmoid LUT values in units of 2^-16
W_BITS = 10                       # mixture weight LUT values in units of 2^-10
PREC = 20                         # probability tables sum to exactly 2**PREC
SEARCH_POINTS = 1024              # Mixture.search: at most this many CDF points per step (all symbols together)


def _decimal_luts():
    with localcontext() as ctx:
        ctx.prec = 40
        return _decimal_luts_in_context()


def _decimal_luts_in_context():
    inv = [int((Decimal(2 ** INV_BITS) * (Decimal(-l) / LS_DEN).exp()).to_integral_value())
           for l in range(LS_MIN, LS_MAX + 1)]
    # sigmoid(t) at t = i / 2048: exp(-|t|) by repeated multiplication. Decimal arithmetic is
    # specified to the digit, so the table is identical on every machine and Python version.
    half = SIG_RANGE << SIG_STEP_BITS
    step = (Decimal(-1) / (1 << SIG_STEP_BITS)).exp()
    e, upper = Decimal(1), []
    for _ in range(half + 1):
        upper.append(int((Decimal(2 ** SIG_BITS) / (1 + e)).to_integral_value()))
        e *= step
    sig = [2 ** SIG_BITS - v for v in upper[:0:-1]] + upper
    sig[0], sig[-1] = 0, 2 ** SIG_BITS
    wexp = [int((Decimal(2 ** W_BITS) * (Decimal(-d) / LOGIT_DEN).exp()).to_integral_value())
            for d in range(LOGIT_SPAN + 1)]
    return (torch.tensor(inv, dtype=torch.int64), torch.tensor(sig, dtype=torch.int64),
            torch.tensor(wexp, dtype=torch.int64))


INV_SCALE_LUT, SIGMOID_LUT, WEIGHT_LUT = _decimal_luts()
_INV_NP = INV_SCALE_LUT.numpy()
_SIGMOID_NP, _WEIGHT_NP = SIGMOID_LUT.numpy().astype(np.int32), WEIGHT_LUT.numpy().astype(np.int32)


class Support:
    """Allowed symbols per coded symbol: ``ids`` (S,) index rows of ``edge`` and ``rank`` (M, n + 1).

    For an allowed set a_0 < ... < a_(m-1) of the alphabet 0..n-1, the coder's table of that set is
    ``C(v) = floor(raw(edge[v]) (2^PREC - m) / total) + rank[v]`` (``raw``: the mixture's CDF at a
    value edge): ``rank[v]`` counts the allowed symbols below v (plus, with a prior, its slots below
    v: :meth:`with_prior`), and ``edge[v]`` is the edge that
    splits the gap below v between its two allowed neighbours (0 below a_0, n above a_(m-1)). C is
    flat over every value left out, so those get no slot, and the allowed symbols' slots add up to
    exactly 2^PREC, each at least 1. :meth:`Mixture.search` finds only allowed symbols."""

    def __init__(self, ids: np.ndarray, edge: np.ndarray, rank: np.ndarray):
        self.ids, self.edge, self.rank = ids, edge, rank
        self.span = (1 << PREC) - rank[:, -1]                       # (M,) 2^PREC less the set's size and prior

    @classmethod
    def of_sets(cls, sets: list[np.ndarray], n: int) -> "Support":
        """The tables of allowed ``sets`` (each sorted, distinct values in [0, n)), no symbols yet."""
        v = np.arange(n + 1)
        edge, rank = np.empty((len(sets), n + 1), np.int64), np.empty((len(sets), n + 1), np.int64)
        for i, a in enumerate(sets):
            a = np.asarray(a, np.int64)
            r = np.searchsorted(a, v, side="left")                  # allowed values below v
            mid = (a[np.maximum(r - 1, 0)] + a[np.minimum(r, len(a) - 1)]) // 2 + 1
            edge[i] = np.where(r == 0, 0, np.where(r == len(a), n, mid))
            rank[i] = r
        return cls(np.zeros(0, np.int64), edge, rank)

    def with_prior(self, weights: np.ndarray, share: int, den: int) -> "Support":
        """The same sets with ``share / den`` of each table's free slots (2^PREC - m) handed out by
        ``weights`` (M, n) >= 0, positive somewhere on each set, instead of by the mixture:
        ``C(v) = floor(raw (span - B) / total) + floor(W(v) B / W(n)) + rank(v)``, ``B = floor(free
        share / den)``, ``W(v)`` the weights below v. The last two terms are one fixed table per set,
        so it takes the place of ``rank`` and the coder is unchanged: C is still flat over every
        value left out and rises by at least 1 over each allowed one."""
        if not share:
            return self
        below = np.zeros(self.rank.shape, np.int64)
        np.cumsum(weights, axis=1, out=below[:, 1:])
        slots = ((1 << PREC) - self.rank[:, -1]) * share // den                 # (M,) the prior's slots
        return Support(self.ids, self.edge, self.rank + below * slots[:, None] // below[:, -1:])

    def select(self, ids: np.ndarray) -> "Support":
        """The same tables for symbols whose sets are rows ``ids``."""
        return Support(np.asarray(ids, np.int64), self.edge, self.rank)

    def rows(self, a: int, b: int) -> "Support":
        return Support(self.ids[a:b], self.edge, self.rank)


class Mixture:
    """Integer mixture parameters, normalised once, for evaluating the CDF at chosen symbol edges.

    Built from (S, K) parameters on the grids above; clamping and the inverse-scale and weight
    lookups happen here once. Arrays are numpy, component-major so that every operation runs
    along the S symbols: ``inv`` (inverse scale) and ``offset`` (mean and half a symbol, times
    the inverse scale, less the sigmoid table's half range) int64 (K, S), ``w`` int32
    (K, S) mixture weights, ``total`` int64 (S,) their sum in units of 2^-SIG_BITS.
    """

    def __init__(self, mu, ls, logit, n: int, support: Support | None = None):
        mu, ls = _as_int64(mu).T, _as_int64(ls).T
        self.n = n
        self.support = support
        self.span = (1 << PREC) - n if support is None else support.span[support.ids]
        self.inv = _INV_NP[np.clip(ls, LS_MIN, LS_MAX) - LS_MIN]
        # t(v) = (v - 1/2 - mu) / s in units 2^-T_BITS, shifted by the sigmoid LUT's half range:
        # t(v) + lim = v * MU_DEN * inv - offset
        self.offset = ((np.clip(mu, -n * MU_DEN, 2 * n * MU_DEN) + MU_DEN // 2) * self.inv
                       - (SIG_RANGE << T_BITS))
        self.w = _weights(logit, mu.shape)
        self.total = self.w.sum(axis=0, dtype=np.int64) << SIG_BITS

    def __len__(self) -> int:
        return self.total.shape[0]

    def rows(self, a: int, b: int) -> "Mixture":
        """Symbols a..b-1 (contiguous copies: they are evaluated many times)."""
        out = Mixture.__new__(Mixture)
        out.n = self.n
        out.inv, out.offset, out.w = (np.ascontiguousarray(t[:, a:b]) for t in (self.inv, self.offset, self.w))
        out.total = self.total[a:b]
        out.support = None if self.support is None else self.support.rows(a, b)
        out.span = self.span if self.support is None else self.span[a:b]
        return out

    def interior_cdf(self, v: np.ndarray) -> np.ndarray:
        """Unnormalised CDF at the lower edge of symbols ``v`` (S,) or (E, S), 0 < v < n."""
        t = (v * MU_DEN)[..., None, :] * self.inv
        t -= self.offset                                          # (edge - mu) / s + lim, units 2^-T_BITS
        np.minimum(np.maximum(t, 0, out=t), (2 * SIG_RANGE << T_BITS) - 1, out=t)  # not np.clip: slower wrapper
        t >>= T_BITS - SIG_STEP_BITS
        g = _SIGMOID_NP[t]
        g *= self.w                                               # < 2^26 each, the sum < 2^29
        return row_sum(g)

    def raw_cdf(self, v: np.ndarray) -> np.ndarray:
        """Unnormalised CDF at the lower edge of symbols ``v`` (S,): 0 at v = 0, ``total`` at v = n."""
        raw = self.interior_cdf(np.clip(v, 1, self.n - 1))
        return np.where(v <= 0, 0, np.where(v >= self.n, self.total, raw))

    def point(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the coder's symbols ``v`` (S,) or (E, S), 0 <= v <= n: the raw CDF at their table edge
        and their rank (v itself without a :class:`Support`)."""
        if self.support is None:
            return self.raw_cdf(v), v
        sup = self.support
        return self.raw_cdf(sup.edge[sup.ids, v]), self.rank(v)

    def rank(self, v: np.ndarray) -> np.ndarray:
        """Allowed symbols below the coder's symbols ``v`` (v itself without a :class:`Support`)."""
        return v if self.support is None else self.support.rank[self.support.ids, v]

    def scale(self, raw: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """The coder's cumulative table from raw CDF values: ``C(v) = floor(raw (2^PREC - m) / total) + rank``
        (m = n and rank = v without a :class:`Support`).

        C(0) = 0, C(n) = 2^PREC and C(v + 1) - C(v) >= 1 for every allowed v, so symbol v owns
        [C(v), C(v + 1)): one point of the table costs one CDF evaluation, and no whole table is built."""
        return raw * self.span // self.total + rank

    def scaled_cdf(self, v: np.ndarray) -> np.ndarray:
        return self.scale(*self.point(v))

    def tables(self) -> torch.Tensor:
        """Whole probability tables: int64 (S, n), each entry >= 1 (with a :class:`Support`: each
        allowed one), every row summing to exactly 2**PREC (the coder of format version 1)."""
        s, n = len(self), self.n
        if self.support is not None:                # allowed symbols only: the left-out ones get 0
            v = np.broadcast_to(np.arange(n + 1)[:, None], (n + 1, s))
            return torch.from_numpy(np.ascontiguousarray(np.diff(self.scaled_cdf(v), axis=0).T))
        cdf = np.empty((s, n + 1), dtype=np.int64)
        cdf[:, 0], cdf[:, n] = 0, self.total
        for v in range(1, n):
            cdf[:, v] = self.interior_cdf(np.full(s, v, dtype=np.int64))
        raw = cdf[:, 1:] - cdf[:, :-1]                                              # (S, n) >= 0
        p = raw * ((1 << PREC) - n) // self.total[:, None] + 1
        rest = (1 << PREC) - p.sum(axis=1)
        p[np.arange(s), p.argmax(axis=1)] += rest
        return torch.from_numpy(p)

    def search(self, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The symbols v with C(v) <= slot < C(v + 1), and C(v), C(v + 1) - C(v) (C: :meth:`scaled_cdf`).

        A search in radix 2^b: each step evaluates 2^b - 1 points per symbol at once and keeps the
        bracket that holds ``slot``. Wide runs take b = 1 (8 steps for 256 symbols); narrow ones take
        more points per step and fewer steps, so a few symbols cost few numpy calls."""
        c, n = len(self), self.n
        b_max = max(1, int(np.log2(SEARCH_POINTS // c + 1)))
        lo, lane, slot1 = np.zeros(c, np.int64), np.arange(c), slot + 1
        raw_lo, raw_hi = np.zeros(c, np.int64), self.total.copy()  # raw CDF at the bracket's ends
        rem = n.bit_length() - 1                                   # bits of the symbol still unknown
        while rem:
            b = min(b_max, rem)
            rem -= b
            e = (1 << b) - 1
            v = lo + (np.arange(1, e + 1, dtype=np.int64) << rem)[:, None]        # (e, c), all interior
            raw, rank = (self.interior_cdf(v), v) if self.support is None else self.point(v)
            below = raw * self.span < (slot1 - rank) * self.total    # C(v) <= slot, without a division
            if e == 1:                                                 # binary step: fewer numpy calls
                raw, below = raw[0], below[0]
                lo += below.astype(np.int64) << rem
                raw_lo = np.where(below, raw, raw_lo)
                raw_hi = np.where(below, raw_hi, raw)
                continue
            k = row_sum(below)                                         # points at or below the slot
            lo += k << rem
            raw_lo = np.where(k > 0, raw[np.maximum(k - 1, 0), lane], raw_lo)
            raw_hi = np.where(k < e, raw[np.minimum(k, e - 1), lane], raw_hi)
        start = self.scale(raw_lo, self.rank(lo))
        return lo, start, self.scale(raw_hi, self.rank(lo + 1)) - start


def _weights(logit, shape: tuple[int, int]) -> np.ndarray:
    """Integer mixture weights (K, S) int32 from logits (S, K) (None or K = 1: all ones)."""
    if logit is None or shape[0] == 1:
        return np.ones(shape, dtype=np.int32)
    logit = _as_int64(logit).T
    return _WEIGHT_NP[np.clip(logit.max(axis=0) - logit, 0, LOGIT_SPAN)]       # max 2^W_BITS


def scale_buckets(ls, logit, edges: tuple[int, ...]) -> np.ndarray:
    """For parameters (S, K) on the grids: how many of ``edges`` lie at or below each symbol's
    weighted mean log-scale ``floor(sum w_k ls_k / sum w_k)`` (ls clamped, integer weights as in
    :class:`Mixture`): int64 (S,), the same on every machine."""
    ls = np.clip(_as_int64(ls).T, LS_MIN, LS_MAX)
    w = _weights(logit, ls.shape)
    mean = row_sum(w * ls) // row_sum(w)
    return np.searchsorted(np.asarray(edges, np.int64), mean, side="right")


def row_sum(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=-2)`` in int64, row by row: numpy's reduction over a short leading axis of
    a few thousand columns is about 3x slower than adding the rows."""
    out = a[..., 0, :].astype(np.int64)
    for k in range(1, a.shape[-2]):
        out += a[..., k, :]
    return out


def _as_int64(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.cpu().numpy()
    return np.asarray(t, dtype=np.int64)


def integer_cdf(mu: torch.Tensor, ls: torch.Tensor, logit: torch.Tensor | None, n: int) -> torch.Tensor:
    """Whole probability tables from (S, K) parameters (``logit`` None when K = 1): int64 (S, n),
    each >= 1, every row summing to exactly 2**PREC (:meth:`Mixture.tables`)."""
    return Mixture(mu, ls, logit, n).tables()


def table_bits(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Ideal code length in bits of symbols ``v`` (S,) under integer tables ``p`` (S, n)."""
    chosen = p.gather(1, v.view(-1, 1).to(torch.int64)).squeeze(1).double()
    return PREC - torch.log2(chosen)


class Coder(Protocol):
    """What both coders (:class:`~shvc_gui.core.entropy.rans.RansStack`,
    :class:`~shvc_gui.core.entropy.ans.TableStack`) offer the bits-back coder: runs of symbols pushed
    and popped under a :class:`Mixture`, and whole streams started, cut, finished and resumed."""

    pushed_bits: float
    popped_bits: float

    def push(self, sym: torch.Tensor, model: Mixture) -> torch.Tensor:
        """Push symbols (S,) so that :meth:`pop` with the same model returns them in order; the
        bits of each symbol (S,) float64."""

    def pop(self, model: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
        """Pop a run of ``len(model)`` symbols: (symbols int64, bits float64)."""

    @classmethod
    def start(cls, seed: np.ndarray | None, lanes: int) -> "Coder":
        """An encoder's stack over ``seed`` words (bits for the first pops)."""

    def cut(self, seed_len: int) -> int:
        """Seed words no pop reached (they leave the file)."""

    def finish(self, prefix: int = 0) -> np.ndarray:
        """The stream's words above ``prefix`` cut seed words."""

    @classmethod
    def resume(cls, words: np.ndarray, prefix: int, lanes: int) -> "Coder":
        """A decoder's stack: what :meth:`finish` wrote, over ``prefix`` zero words."""

    def check_finished(self, start_words: np.ndarray) -> None:
        """After decoding, the stack is where the encoder started; FormatError otherwise."""


assert math.isclose(SIGMOID_LUT[len(SIGMOID_LUT) // 2].item(), 2 ** (SIG_BITS - 1))
