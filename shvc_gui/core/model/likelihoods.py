"""Discretized logistic (mixture) distributions over integer symbols: the parameter grids, and
:func:`log_prob_float`, the differentiable log-probabilities for training, in float.

The integer form the coders use (lookup tables, pointwise and whole tables, the quantile search) is
the entropy model :class:`shvc_gui.core.entropy.mixture.Mixture`, built on these grids.

Parameters live on fixed-point grids:

* ``mu``: mean in 1/16 symbol (``MU_DEN``); a symbol ``v`` covers ``[v - 1/2, v + 1/2)``.
* ``ls``: log-scale in 1/16 nat (``LS_DEN``) of the scale in symbol units, clamped to ``[LS_MIN, LS_MAX]``.
* ``logit``: mixture logits in 1/8 nat (``LOGIT_DEN``).
The first and last symbols take the tails, so every symbol has non-zero probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MU_DEN = 16
LS_DEN = 16
LS_MIN, LS_MAX = -48, 96          # scale from e^-3 (0.05 symbol) to e^6 (403 symbols)
LOGIT_DEN = 8
LOGIT_SPAN = 127                  # weights below e^(-127/8) of the largest are dropped
BETA_DEN = 64                     # channel-linear AR coefficients in 1/64
BETA_MAX = 128


def log_prob_float(v: torch.Tensor, mu: torch.Tensor, ls: torch.Tensor, logit: torch.Tensor | None,
                   n: int) -> torch.Tensor:
    """Natural-log probability of symbols ``v`` (float, any shape ``X``) under the mixture.

    ``mu``, ``ls``, ``logit``: float tensors of shape ``X + (K,)`` on the fixed-point grids above
    (so they can be straight-through rounded by the caller). Returns shape ``X``.

    A bin's mass is ``sigmoid(plus) - sigmoid(minus)`` with ``plus - minus = 1/s``, whose log is
    ``log sigmoid(plus) + log sigmoid(-minus) + log(1 - e^(-1/s))``: stable everywhere without a
    fallback, and two softplus per component (the end bins drop the edge they do not have).
    """
    v = v.unsqueeze(-1)
    ls = ls.clamp(LS_MIN, LS_MAX) / LS_DEN
    inv_s = torch.exp(-ls)
    c = v - mu / MU_DEN
    plus = (c + 0.5) * inv_s
    minus = (c - 0.5) * inv_s
    lower = (v > 0.5).to(mu.dtype)           # the bin has a lower edge (not symbol 0)
    upper = (v < n - 1.5).to(mu.dtype)       # ... and an upper edge (not symbol n - 1)
    lp = torch.log(-torch.expm1(-inv_s)) * (lower * upper) - F.softplus(-plus) * upper - F.softplus(minus) * lower
    if logit is None or lp.shape[-1] == 1:
        return lp.squeeze(-1)
    logit = logit / LOGIT_DEN
    return torch.logsumexp(lp + logit, dim=-1) - torch.logsumexp(logit, dim=-1)
