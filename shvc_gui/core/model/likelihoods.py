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
_LUT_CACHE: dict = {}


def _luts(device):
    key = str(device)
    if key not in _LUT_CACHE:
        _LUT_CACHE[key] = tuple(t.to(device) for t in (INV_SCALE_LUT, SIGMOID_LUT, WEIGHT_LUT))
    return _LUT_CACHE[key]


def _sigmoid_fixed(t: torch.Tensor, sig_lut: torch.Tensor) -> torch.Tensor:
    """Sigmoid of t (units 2^-T_BITS) from the LUT, t floored to the LUT step; units 2^-SIG_BITS.

    Modifies ``t`` in place. Shifts are arithmetic (floor) on int64.
    """
    lim = SIG_RANGE << T_BITS
    t.clamp_(-lim, lim - 1).add_(lim)                      # now in [0, 2*lim)
    return sig_lut[t >> (T_BITS - SIG_STEP_BITS)]


def integer_cdf(mu: torch.Tensor, ls: torch.Tensor, logit: torch.Tensor | None, n: int) -> torch.Tensor:
    """Probability tables for discretized logistic mixtures, exact in integers.

    ``mu``, ``ls``, ``logit``: int64 of shape (S, K) (``logit`` None when K = 1).
    Returns int64 (S, n) probabilities, each >= 1, every row summing to exactly 2**PREC.
    """
    inv_lut, sig_lut, w_lut = _luts(mu.device)
    s, k = mu.shape
    mu = mu.to(torch.int64).clamp(-n * MU_DEN, 2 * n * MU_DEN)
    ls = ls.to(torch.int64).clamp(LS_MIN, LS_MAX)
    inv = inv_lut[ls - LS_MIN]                                                 # (S, K)
    if logit is None or k == 1:
        w = torch.ones_like(mu)
    else:
        logit = logit.to(torch.int64)
        d = (logit.amax(dim=1, keepdim=True) - logit).clamp(0, LOGIT_SPAN)
        w = w_lut[d]                                                           # (S, K), max 2^W_BITS
    edges = torch.arange(1, n, device=mu.device, dtype=torch.int64) * MU_DEN - MU_DEN // 2
    cdf = torch.zeros(s, n - 1, dtype=torch.int64, device=mu.device)
    for j in range(k):
        t = (edges.view(1, -1) - mu[:, j:j + 1]).mul_(inv[:, j:j + 1])    # units 2^-T_BITS
        cdf += _sigmoid_fixed(t, sig_lut).mul_(w[:, j:j + 1])
    total = w.sum(dim=1, keepdim=True) << SIG_BITS
    zero = torch.zeros(s, 1, dtype=torch.int64, device=mu.device)
    cdf = torch.cat([zero, cdf, total], dim=1)
    raw = cdf[:, 1:] - cdf[:, :-1]                                              # (S, n) >= 0
    p = torch.div(raw * ((1 << PREC) - n), total, rounding_mode="floor") + 1
    rest = (1 << PREC) - p.sum(dim=1)
    top = p.argmax(dim=1)
    p[torch.arange(s, device=p.device), top] += rest
    return p


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
