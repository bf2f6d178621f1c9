"""Function-preserving growth of a trained model: a wider (``width``) or wider-windowed (``kernel``)
model that starts out computing exactly what the trained one computes, so training continues from
where it was instead of from scratch (``shvc train run --init CHECKPOINT --width 96``).

Every convolution of the grown model is the trained one embedded in a larger weight tensor:

* the trained output channels keep their weights and bias; their weights on the new input channels
  and on the new outer kernel taps are zero, so their outputs do not change (nor does their
  fake-quantization scale, the largest weight of the channel);
* the new output channels (hidden units) start from the fresh initialisation: they compute
  something, but every later layer reads them with zero weights, so the outputs do not change
  either, and training grows those weights from there.

Only widths and kernels may grow; depth, mixtures, the head layout and the conditioning must match.
"""

from __future__ import annotations

import torch

from ..core.model.hparams import HParams
from ..core.model.shvc import SHVC

FIXED = ("k", "depth", "latent_layers", "z_channels", "mixtures", "split", "anchor", "heads", "interp")


def check_growable(old: HParams, new: HParams) -> None:
    """ValueError unless ``new`` only widens ``old`` (width, kernel)."""
    diff = [f for f in FIXED if getattr(old, f) != getattr(new, f)]
    if diff:
        raise ValueError(f"a trained model can only grow in width and kernel; these differ: {', '.join(diff)}")
    if new.width < old.width or new.kernel < old.kernel:
        raise ValueError("width and kernel can only grow")


def _embed(old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """``old`` placed in the leading channels (centred taps) of ``fresh``'s shape: trained channels
    read zeros from what is new, new channels keep ``fresh``."""
    out = fresh.clone()
    if old.dim() == 1:                              # bias (or a per-channel buffer)
        out[:old.shape[0]] = old
        return out
    co, ci, kh, kw = old.shape
    top, left = (out.shape[2] - kh) // 2, (out.shape[3] - kw) // 2
    out[:co] = 0                                    # trained channels: nothing but their old weights
    out[:, ci:] = 0                                 # no one reads the new channels yet
    out[:co, :ci, top:top + kh, left:left + kw] = old
    return out


def grow_state(state: dict, old: HParams, new: HParams, seed: int = 0) -> dict:
    """The state dict of an :class:`SHVC` with ``new`` hyper-parameters that computes what the model
    with ``old`` ones and ``state`` computes (see the module docstring)."""
    check_growable(old, new)
    torch.manual_seed(seed)
    fresh = SHVC(new).state_dict()
    if set(fresh) != set(state):
        raise ValueError("the checkpoint's networks do not match the grown model's")
    return {name: _embed(state[name], t) if state[name].shape != t.shape else state[name].clone()
            for name, t in fresh.items()}
