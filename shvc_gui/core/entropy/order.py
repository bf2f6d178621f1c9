"""The coding order of one group of patches, as a sequence of steps.

Each :class:`Step` has two sides: ``encode`` (what the encoder does: push a tensor, or pop a latent
from the bits already on the stack) and ``decode`` (its inverse: pop that tensor, or push the latent
back). The encoder runs the steps in order; the decoder runs the same steps in reverse order, each
inverted, so decoding is derived from the one list and cannot drift from it
(:func:`encode_group`, :func:`decode_group`).

Order of one group (encoder; :func:`steps`):

* ``shvc``: pop z1 ~ q(z1|x_1:s); push x ~ p(x|z1); for i=1..L-1: pop z_i+1 ~ q, push z_i ~ p(z_i|z_i+1);
  push zL ~ p(zL).
* ``arib``: push x_s+1: ~ p(x_s+1:|x_1:s) first, which supplies the bits for popping z1; then as
  ``shvc`` with x_1:s.
* ``det``: the deterministic model; push every level of the sub-pixel pyramid, finest first, no pops.

Within a pushed tensor the order is sub-image j = 1..k*k, then channel, so the decoder can pop
sub-image by sub-image ("local reverse encoding"). Pixels outside ``valid`` are never coded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..model.layers import subpixel, subpixel_inverse
from ..model.shvc import PIXEL_BINS, Z_BINS, IntegerSHVC, channel_mean, pixel_centre
from ..progress import check_cancel
from ..tiling import PAD_VALUE
from .mixture import Coder, Mixture
from .parallel import batched


def _flat_k(t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(G, K, h, w) -> (S, K) rows in (G, h, w) order, masked positions only."""
    rows = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    return rows if mask is None else rows[mask.reshape(-1)]


def _flat_z(t: torch.Tensor) -> torch.Tensor:
    """(G, C, h, w) latent parameters -> (S, 1) rows in (G, C, h, w) order."""
    return t.reshape(-1, 1)


@dataclass
class State:
    """What the steps of one group share: the sub-pixel image ``X`` (G, k*k, 3, h, w), the latents
    ``z[i]``, and for ``det`` the pyramid's images (encoder) or the level decoded last (decoder)."""
    X: torch.Tensor | None = None
    z: dict = field(default_factory=dict)
    images: list = field(default_factory=list)
    cur: torch.Tensor | None = None


@dataclass(frozen=True)
class Step:
    name: str
    encode: Callable[["Group", State], None]
    decode: Callable[["Group", State], None]


class Group:
    """The tensors of one group of patches, and the runs of symbols they push and pop on ``stack``."""

    def __init__(self, model: IntegerSHVC, stack: Coder, valid: torch.Tensor, patch: int,
                 net_batch: int, device: torch.device, stats: dict, cancel: threading.Event | None = None):
        self.m, self.st, self.hp, self.stats, self.cancel = model, stack, model.hp, stats, cancel
        self.net_batch, self.device = net_batch, device
        g = valid.shape[0]
        self.size, self.patch = g, patch
        rows = torch.arange(patch).view(1, patch, 1)
        cols = torch.arange(patch).view(1, 1, patch)
        mask = (rows < valid[:, 0].view(-1, 1, 1)) & (cols < valid[:, 1].view(-1, 1, 1))
        self.mask = mask.unsqueeze(1).to(device)                        # (G, 1, P, P)
        self.index = torch.arange(patch * patch, device=device).view(1, 1, patch, patch).expand(g, 1, patch, patch)
        self.bits = torch.zeros(g, patch * patch, dtype=torch.float64)
        k = self.hp.k
        self.idxb, self.maskb = subpixel(self.index, k), subpixel(self.mask, k)

    # --- pixels ---------------------------------------------------------------------------
    def _net(self, fn, net_batch, *tensors):
        """A network call over the group (checks for cancellation first: a group can take seconds)."""
        check_cancel(self.cancel, "Coding")
        return batched(self.stats, fn, net_batch, *tensors)

    def _pixel_units(self, X, j, z1):
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
            for c, mu, ls, logit in self._pixel_units(X, j, z1):
                m = maskb[:, j, 0]
                units.append((X[:, j, c][m], _flat_k(mu, m), _flat_k(ls, m), _flat_k(logit, m), idxb[:, j, 0], m))
        for sym, mu, ls, logit, idx, m in reversed(units):
            self._record(self.st.push(sym, Mixture(mu, ls, logit, PIXEL_BINS)), idx, m)

    def pop_pixels(self, X, blocks, idxb, maskb, z1):
        """Pop sub-images ``blocks`` into X (in place), sub-image by sub-image, channel by channel."""
        for j in blocks:
            logit, mu, ls, beta = self._net(lambda a, b: self.m.pixel_params(j, a, b), self.net_batch, X, z1)
            m = maskb[:, j, 0]
            prev, centre = [], pixel_centre(self.hp, X, j)
            for c in range(3):
                mc = channel_mean(mu, beta, prev, c, exact=True, centre=centre)
                sym, _ = self.st.pop(Mixture(_flat_k(mc, m), _flat_k(ls[:, c], m), _flat_k(logit[:, c], m),
                                             PIXEL_BINS))
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
            self.st.push(sym, Mixture(mu, ls, None, Z_BINS))

    def pop_prior(self, i, above):
        """Pop z_i ~ p(z_i | z_i+1), sub-image by sub-image."""
        k, cz, h = self.hp.k, self.hp.z_channels, self.patch // self.hp.k ** i
        G = torch.zeros(self.size, k * k, cz, h // k, h // k, dtype=torch.int64, device=self.device)
        for j in range(self.hp.blocks):
            mu, ls = self._prior_params(i, j, G, above)
            sym, _ = self.st.pop(Mixture(_flat_z(mu), _flat_z(ls), None, Z_BINS))
            G[:, j] = sym.view(G[:, j].shape).to(self.device)
        return subpixel_inverse(G, k)

    def posterior(self, i, src):
        """(mu, ls) of q(z_i | .) from x sub-images (i = 1) or z_{i-1}."""
        if i == 1:
            return self._net(self.m.posterior_z1, self.net_batch, src)
        return self._net(lambda a: self.m.posterior_z(i - 1, a), self.net_batch, src)

    def pop_posterior(self, i, src):
        mu, ls = self.posterior(i, src)
        sym, _ = self.st.pop(Mixture(_flat_z(mu), _flat_z(ls), None, Z_BINS))
        return sym.view(mu.shape).to(self.device)

    def push_posterior(self, i, src, z):
        mu, ls = self.posterior(i, src)
        self.st.push(z.reshape(-1), Mixture(_flat_z(mu), _flat_z(ls), None, Z_BINS))

    def pyramid_layout(self):
        """Per level (top first): (index blocks, mask blocks) of the deterministic pyramid."""
        if getattr(self, "_pyramid", None) is None:
            self._pyramid = self._pyramid_levels()
        return self._pyramid

    def _pyramid_levels(self):
        k = self.hp.k
        levels, idx, msk = [], self.index, self.mask
        while True:
            ib, mb = subpixel(idx, k), subpixel(msk, k)
            levels.append((ib, mb))
            if ib.shape[-1] == 1 or ib.shape[-1] % k:
                return levels[::-1]
            idx, msk = ib[:, 0], mb[:, 0]


# --- the steps ------------------------------------------------------------------------------------
def _pixels(blocks: range, with_z: bool) -> Step:
    """Sub-images ``blocks`` of X, given z1 (``with_z``) or not: encoder pushes, decoder pops."""
    def enc(g: Group, s: State):
        g.push_pixels(s.X, blocks, g.idxb, g.maskb, s.z[1] if with_z else None)

    def dec(g: Group, s: State):
        g.pop_pixels(s.X, blocks, g.idxb, g.maskb, s.z[1] if with_z else None)
    return Step(f"x[{blocks.start}:{blocks.stop}]" + (" | z1" if with_z else ""), enc, dec)


def _posterior(i: int) -> Step:
    """z_i ~ q(z_i | x_1:s) (i = 1) or q(z_i | z_i-1): encoder pops it, decoder pushes it back."""
    def src(s: State):
        return s.X if i == 1 else s.z[i - 1]

    def enc(g: Group, s: State):
        s.z[i] = g.pop_posterior(i, src(s))

    def dec(g: Group, s: State):
        g.push_posterior(i, src(s), s.z[i])
    return Step(f"q(z{i})", enc, dec)


def _prior(i: int) -> Step:
    """z_i ~ p(z_i | z_i+1) (the top level: p(z_L)): encoder pushes, decoder pops."""
    def enc(g: Group, s: State):
        g.push_prior(i, s.z[i], s.z.get(i + 1))

    def dec(g: Group, s: State):
        s.z[i] = g.pop_prior(i, s.z.get(i + 1))
    return Step(f"p(z{i})", enc, dec)


def _level(n: int, blocks: range) -> Step:
    """Level ``n`` (0: the coarsest) of the deterministic pyramid."""
    def enc(g: Group, s: State):
        ib, mb = g.pyramid_layout()[n]
        g.push_pixels(s.images[n], blocks, ib, mb, None)

    def dec(g: Group, s: State):
        ib, mb = g.pyramid_layout()[n]
        h = ib.shape[-1]
        X = torch.full((g.size, g.hp.blocks, 3, h, h), PAD_VALUE, dtype=torch.int64, device=g.device)
        if n:
            X[:, 0] = s.cur
        g.pop_pixels(X, blocks, ib, mb, None)
        s.cur = subpixel_inverse(X, g.hp.k)
    return Step(f"level {n}", enc, dec)


def levels_of(hp) -> int:
    """Levels of the deterministic pyramid of a ``hp.patch`` patch (as :meth:`Group.pyramid_layout`)."""
    n, side = 0, hp.patch
    while True:
        side //= hp.k
        n += 1
        if side == 1 or side % hp.k:
            return n


def steps(hp, variant: str) -> list[Step]:
    """The encoder's steps for one group, in order (the decoder takes them backwards)."""
    if variant == "det":
        return [_level(n, range(0 if n == 0 else 1, hp.blocks)) for n in reversed(range(levels_of(hp)))]
    s = hp.split if variant == "arib" else hp.blocks
    out = [_pixels(range(s, hp.blocks), with_z=False)] if s < hp.blocks else []
    out += [_posterior(1), _pixels(range(0, s), with_z=True)]
    for i in range(1, hp.latent_layers):
        out += [_posterior(i + 1), _prior(i)]
    out.append(_prior(hp.latent_layers))
    return out


def encode_group(g: Group, x: torch.Tensor, variant: str) -> None:
    """Code the patches ``x`` (G, 3, P, P) of group ``g``: its steps in order."""
    k, s = g.hp.k, State()
    if variant == "det":
        cur = x
        for _ in range(levels_of(g.hp)):
            X = subpixel(cur, k)
            s.images.append(X)
            cur = X[:, 0]
        s.images.reverse()                                    # coarsest first, as the levels count
    else:
        s.X = subpixel(x, k)
    for step in steps(g.hp, variant):
        step.encode(g, s)


def decode_group(g: Group, variant: str) -> torch.Tensor:
    """The patches (G, 3, P, P) of group ``g``: its steps backwards, each inverted."""
    k, s = g.hp.k, State()
    if variant != "det":
        h = g.patch // k
        s.X = torch.full((g.size, g.hp.blocks, 3, h, h), PAD_VALUE, dtype=torch.int64, device=g.device)
    for step in reversed(steps(g.hp, variant)):
        step.decode(g, s)
    return s.cur if variant == "det" else subpixel_inverse(s.X, k)


def bits_map(g: Group) -> np.ndarray:
    """(G, P, P) float32: -log2 p of each pixel pushed so far, channels summed."""
    return g.bits.view(g.size, g.patch, g.patch).numpy()
