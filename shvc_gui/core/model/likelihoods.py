"""Discretized logistic (mixture) distributions over integer symbols, in two forms.

* :func:`log_prob_float` — differentiable log-probabilities for training, in float.
* :func:`integer_cdf` — the *one* function that turns integer distribution parameters into integer
  probability tables for the entropy coder. It uses only integer arithmetic and lookup tables that
  are computed with :mod:`decimal` (correctly rounded), so encoder and decoder build identical
  tables on every machine.

Parameters live on fixed-point grids:

* ``mu``: mean in 1/16 symbol (``MU_DEN``); a symbol ``v`` covers ``[v - 1/2, v + 1/2)``.
* ``ls``: log-scale in 1/16 nat (``LS_DEN``) of the scale in symbol units, clamped to ``[LS_MIN, LS_MAX]``.
* ``logit``: mixture logits in 1/8 nat (``LOGIT_DEN``).
The first and last symbols take the tails, so every symbol has non-zero probability.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import torch
import torch.nn.functional as F

MU_DEN = 16
LS_DEN = 16
LS_MIN, LS_MAX = -48, 96          # scale from e^-3 (0.05 symbol) to e^6 (403 symbols)
LOGIT_DEN = 8
LOGIT_SPAN = 127                  # weights below e^(-127/8) of the largest are dropped
INV_BITS = 20                     # inverse scale LUT: round(2^20 * exp(-ls/16))
T_BITS = INV_BITS + 4             # t = (edge - mu) / s in units of 2^-24 (mu in 1/16 = 2^-4)
SIG_STEP_BITS = 11                # sigmoid LUT step 1/2048 (65537 entries, no interpolation)
SIG_RANGE = 16                    # sigmoid LUT covers t in [-16, 16]
SIG_BITS = 16                     # sigmoid LUT values in units of 2^-16
W_BITS = 10                       # mixture weight LUT values in units of 2^-10
PREC = 20                         # probability tables sum to exactly 2**PREC
BETA_DEN = 64                     # channel-linear AR coefficients in 1/64
BETA_MAX = 128


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


class Mixture:
    """Integer mixture parameters, normalised once, for evaluating the CDF at chosen symbol edges.

    Built from (S, K) parameters on the grids above; clamping and the inverse-scale and weight
    lookups happen here once. Arrays are numpy, component-major so that every operation runs
    along the S symbols: ``inv`` (inverse scale) and ``offset`` (mean and half a symbol, times
    the inverse scale, less the sigmoid table's half range) int64 (K, S), ``w`` int32
    (K, S) mixture weights, ``total`` int64 (S,) their sum in units of 2^-SIG_BITS.
    """

    def __init__(self, mu, ls, logit, n: int):
        mu, ls = _as_int64(mu).T, _as_int64(ls).T
        self.n = n
        self.inv = _INV_NP[np.clip(ls, LS_MIN, LS_MAX) - LS_MIN]
        # t(v) = (v - 1/2 - mu) / s in units 2^-T_BITS, shifted by the sigmoid LUT's half range:
        # t(v) + lim = v * MU_DEN * inv - offset
        self.offset = ((np.clip(mu, -n * MU_DEN, 2 * n * MU_DEN) + MU_DEN // 2) * self.inv
                       - (SIG_RANGE << T_BITS))
        if logit is None or mu.shape[0] == 1:
            self.w = np.ones(mu.shape, dtype=np.int32)
        else:
            logit = _as_int64(logit).T
            d = np.clip(logit.max(axis=0) - logit, 0, LOGIT_SPAN)
            self.w = _WEIGHT_NP[d]                               # max 2^W_BITS
        self.total = self.w.sum(axis=0, dtype=np.int64) << SIG_BITS

    def __len__(self) -> int:
        return self.total.shape[0]

    def rows(self, a: int, b: int) -> "Mixture":
        """Symbols a..b-1 (contiguous copies: they are evaluated many times)."""
        out = Mixture.__new__(Mixture)
        out.n = self.n
        out.inv, out.offset, out.w = (np.ascontiguousarray(t[:, a:b]) for t in (self.inv, self.offset, self.w))
        out.total = self.total[a:b]
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

    def scale(self, raw: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The coder's cumulative table from raw CDF values: ``C(v) = floor(raw (2^PREC - n) / total) + v``.

        C(0) = 0, C(n) = 2^PREC and C(v + 1) - C(v) >= 1, so symbol v owns [C(v), C(v + 1)): one
        point of the table costs one CDF evaluation, and no whole table is built."""
        return raw * ((1 << PREC) - self.n) // self.total + v

    def scaled_cdf(self, v: np.ndarray) -> np.ndarray:
        return self.scale(self.raw_cdf(v), v)


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
    """Whole probability tables (the coder of format version 1), exact in integers.

    ``mu``, ``ls``, ``logit``: int64 of shape (S, K) (``logit`` None when K = 1).
    Returns int64 (S, n) probabilities, each >= 1, every row summing to exactly 2**PREC.
    """
    m = Mixture(mu, ls, logit, n)
    s = len(m)
    cdf = np.empty((s, n + 1), dtype=np.int64)
    cdf[:, 0], cdf[:, n] = 0, m.total
    for v in range(1, n):
        cdf[:, v] = m.interior_cdf(np.full(s, v, dtype=np.int64))
    raw = cdf[:, 1:] - cdf[:, :-1]                                              # (S, n) >= 0
    p = raw * ((1 << PREC) - n) // m.total[:, None] + 1
    rest = (1 << PREC) - p.sum(axis=1)
    p[np.arange(s), p.argmax(axis=1)] += rest
    return torch.from_numpy(p)


def log_prob_float(v: torch.Tensor, mu: torch.Tensor, ls: torch.Tensor, logit: torch.Tensor | None,
                   n: int) -> torch.Tensor:
    """Natural-log probability of symbols ``v`` (float, any shape ``X``) under the mixture.

    ``mu``, ``ls``, ``logit``: float tensors of shape ``X + (K,)`` on the fixed-point grids above
    (so they can be straight-through rounded by the caller). Returns shape ``X``.
    """
    v = v.unsqueeze(-1)
    mu_s = mu / MU_DEN
    ls = ls.clamp(LS_MIN, LS_MAX)
    inv_s = torch.exp(-ls / LS_DEN)
    plus = (v + 0.5 - mu_s) * inv_s
    minus = (v - 0.5 - mu_s) * inv_s
    log_cdf_plus = plus - F.softplus(plus)          # log sigmoid(plus)
    log_one_minus_cdf_min = -F.softplus(minus)      # log (1 - sigmoid(minus))
    mid = (v - mu_s) * inv_s
    # log(sigmoid(plus) - sigmoid(minus)), stable; fallback to the density in the far tails
    diff = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_pdf_mid = mid - 2 * F.softplus(mid) - ls / LS_DEN
    log_mid = torch.where(diff > 1e-5, torch.log(diff.clamp_min(1e-12)), log_pdf_mid)
    lp = torch.where(v < 0.5, log_cdf_plus, torch.where(v > n - 1.5, log_one_minus_cdf_min, log_mid))
    if logit is None or lp.shape[-1] == 1:
        return lp.squeeze(-1)
    logit = logit / LOGIT_DEN
    return torch.logsumexp(lp + torch.log_softmax(logit, dim=-1), dim=-1)


def table_bits(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Ideal code length in bits of symbols ``v`` (S,) under integer tables ``p`` (S, n)."""
    chosen = p.gather(1, v.view(-1, 1).to(torch.int64)).squeeze(1).double()
    return PREC - torch.log2(chosen)


assert math.isclose(SIGMOID_LUT[len(SIGMOID_LUT) // 2].item(), 2 ** (SIG_BITS - 1))
