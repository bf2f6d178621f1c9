"""SHVC: hierarchical VAE with sub-pixel autoregressive priors and likelihood (Ryder et al. 2022).

Generative model (eq. 11):  p(x | z1) p(zL) prod_i p(z_i | z_{i+1}); posterior (eq. 12):
q(z1 | x_{1:s}) prod_i q(z_{i+1} | z_i). Every conditional of the generative model is sub-pixel
autoregressive (eq. 9): a tensor is cut by g(.; k) into k*k sub-images, sub-image j is predicted
by a network from sub-images < j (and the layer above), and, for pixels, the channels of one
sub-image follow a channel-linear autoregression (eqs. 6-7). With ArIB split s, sub-images
j > s of x do not see z1 (so they can be coded before z1 is popped).

With ``latent_layers == 0`` the model is deterministic: a pyramid of sub-pixel reorders, where the
first sub-image of one level is the image of the next, coded top-down with the same network.

Two twins share the parameter interpretation below:
* :class:`SHVC` — float (``quantize=False``) or fake-quantized (``quantize=True``) training model.
* :class:`IntegerSHVC` — exact integer inference built from :meth:`SHVC.integer_state`;
  the entropy coder uses only this one.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
import torch.nn as nn

from .hparams import HParams
from .layers import (ConvNet, IntConvNet, ar_input, ar_input_all, latent_input, pixel_input,
                     subpixel)
from .likelihoods import BETA_DEN, BETA_MAX, LOGIT_DEN, LS_DEN, LS_MAX, LS_MIN, MU_DEN, log_prob_float
from .quant import ACT_DEN, floor_ste, round_ste

PIXEL_BINS = 256
Z_BINS = 128
LN2 = math.log(2.0)


# --- parameter grids ------------------------------------------------------------------------
def pixel_head(k_mix: int, residual: bool = False):
    """Gain/offset of the pixel network outputs: [logit, mu, log-scale, beta], 3*K each.

    ``residual``: the mean is an offset from a prediction (:func:`pixel_centre`, which
    :func:`channel_mean` adds less 128), so it starts there
    with a finer gain, and the scale starts at e^2 instead of e^4 grey levels."""
    n = 3 * k_mix
    mu_gain, mu_offset, ls_offset = (16, 128.0, 2.0) if residual else (128, 127.5, 4.0)
    gain = [LOGIT_DEN] * n + [mu_gain * MU_DEN] * n + [LS_DEN] * n + [BETA_DEN] * n
    offset = [0.0] * n + [mu_offset * MU_DEN] * n + [ls_offset * LS_DEN] * n + [0.0] * n
    return gain, offset


def latent_head(cz: int):
    """Gain/offset of latent network outputs: [mu, log-scale], z real = (i - 63.5) / 16."""
    half = (Z_BINS - 1) / 2
    gain = [16 * MU_DEN] * cz + [LS_DEN] * cz
    offset = [half * MU_DEN] * cz + [(math.log(16.0)) * LS_DEN] * cz
    return gain, offset


def split_pixel(out: torch.Tensor, k_mix: int):
    """(N, 12K, h, w) -> logit, mu, ls, beta each (N, 3, K, h, w)."""
    n, _, h, w = out.shape
    parts = out.reshape(n, 4, 3, k_mix, h, w)
    return parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3]


def channel_mean(mu: torch.Tensor, beta: torch.Tensor, prev: list[torch.Tensor], c: int,
                 exact: bool, centre: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7: mean of channel c shifted linearly by already coded channels (centered symbols).

    ``mu``, ``beta``: (N, 3, K, h, w); ``prev``: channels < c as (N, h, w) symbol tensors;
    ``centre``: (N, 3, h, w) integers on the 1/16-symbol grid that the means are relative to
    (:func:`pixel_centre`), None for 128. Returns (N, K, h, w) on the 1/16-symbol grid.
    """
    base = mu[:, c]
    if centre is not None:
        base = base + (centre[:, c].unsqueeze(1) - 128 * MU_DEN)
    if c == 0:
        return base
    idx = [[], [0], [1, 2]][c]
    acc = 0
    for i, b in enumerate(idx):
        coef = beta[:, b].clamp(-BETA_MAX, BETA_MAX)
        ref = 128 * MU_DEN if centre is None else centre[:, i].unsqueeze(1)
        acc = acc + coef * (prev[i].unsqueeze(1) * MU_DEN - ref)
    scale = BETA_DEN                                   # (1/64) * (1/16 symbol) -> 1/16 symbol
    if exact:
        return base + torch.div(acc, scale, rounding_mode="floor")
    return base + floor_ste(acc / scale)


def _shifted(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``t`` (N, C, h, w) moved so that position (r, c) holds t[r + dy, c + dx]; edges repeat."""
    if dx:
        t = torch.cat([t[..., :, dx:], t[..., :, -1:].expand(*t.shape[:-1], dx)], dim=-1)
    if dy:
        t = torch.cat([t[..., dy:, :], t[..., -1:, :].expand(*t.shape[:-2], dy, t.shape[-1])], dim=-2)
    return t


def interpolation(X: torch.Tensor, j: int) -> torch.Tensor:
    """The linear interpolation of sub-image ``j``'s known neighbours, k = 2, on the 1/16 grid.

    j = 1 (right of a known pixel): left and right neighbours in sub-image 0; j = 2 (below): the
    pixels above and below in sub-image 0; j = 3 (diagonal): the four direct neighbours, above and
    below in sub-image 1, left and right in sub-image 2. Integers, exact in float32 and int64."""
    if j == 1:
        return (X[:, 0] + _shifted(X[:, 0], 0, 1)) * (MU_DEN // 2)
    if j == 2:
        return (X[:, 0] + _shifted(X[:, 0], 1, 0)) * (MU_DEN // 2)
    return (X[:, 1] + _shifted(X[:, 1], 1, 0) + X[:, 2] + _shifted(X[:, 2], 0, 1)) * (MU_DEN // 4)


def pixel_centre(hp: HParams, X: torch.Tensor, j: int) -> torch.Tensor | None:
    """What the pixel means of sub-image ``j`` are relative to, on the 1/16-symbol grid (N, 3, h, w),
    from sub-images < j only (the decoder has them): the co-located pixel of sub-image 0 for
    anchored models, the interpolation of the known neighbours for ``interp`` ones, j >= 1;
    else None (the fixed 128)."""
    if j == 0 or not (hp.anchor or hp.interp):
        return None
    return X[:, 0] * MU_DEN if hp.anchor else interpolation(X, j)


def head_input(X: torch.Tensor, j: int, centre: torch.Tensor | None, cond: list[torch.Tensor]) -> torch.Tensor:
    """Input of pixel head ``j``: the known sub-images < j on the activation grid and, for centred
    models (``centre`` given), the same minus the centre (clamped), then ``cond``; head 0 sees a
    constant plane."""
    n, _, _, h, w = X.shape
    if j == 0:
        parts = [torch.full((n, 1, h, w), float(ACT_DEN), device=X.device)]
    else:
        known = X[:, :j].to(torch.float32)
        parts = [pixel_input(known).flatten(1, 2)]
        if centre is not None:
            ref = torch.div(centre.to(torch.float32), MU_DEN, rounding_mode="floor").unsqueeze(1)
            parts.append((known - ref).clamp(-128, 127).flatten(1, 2))
    return torch.cat(parts + list(cond), dim=1)


def head_channels(hp: HParams, j: int) -> int:
    """Input channels of pixel head ``j`` (without conditioning)."""
    return 1 if j == 0 else 3 * j * (2 if hp.interp or hp.anchor else 1)


def arib_penalty(h_q: torch.Tensor, h_p: torch.Tensor) -> torch.Tensor:
    """Eq. 10: max(0, H_q(z1 | x_1:s) - H_p(x_s+1: | x_1:s)), per image (same units as inputs)."""
    return torch.relu(h_q - h_p)


def _last(t: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) -> (N, h, w, K)."""
    return t.permute(0, 2, 3, 1)


def pixel_log_prob(xb: torch.Tensor, out: torch.Tensor, centre: torch.Tensor | None, k_mix: int,
                   quantize: bool) -> torch.Tensor:
    """log p of pixel sub-images ``xb`` (M, 3, h, w) under the pixel network outputs ``out`` (eqs. 6-7,
    logistic mixtures), straight-through rounded onto the integer grids when ``quantize``."""
    logit, mu, ls, beta = split_pixel(out, k_mix)
    if quantize:
        logit, mu, ls, beta = (round_ste(t) for t in (logit, mu, ls, beta))
    xs = xb.to(torch.float32)
    lps = []
    for c in range(3):
        m = channel_mean(mu, beta, [xs[:, i] for i in range(c)], c, exact=False, centre=centre)
        lps.append(log_prob_float(xs[:, c], _last(m), _last(ls[:, c]), _last(logit[:, c]), PIXEL_BINS))
    return torch.stack(lps, dim=1)


class SHVC(nn.Module):
    """Training model (float or fake-quantized).

    ``pixel_log_prob`` is the elementwise likelihood; training may swap in a compiled twin of it
    (``torch.compile``: in eager mode it takes most of a step)."""

    def __init__(self, hp: HParams):
        super().__init__()
        self.hp = hp
        self.pixel_log_prob = pixel_log_prob
        b, cz, w, d = hp.blocks, hp.z_channels, hp.width, hp.depth
        pg, po = pixel_head(hp.mixtures)
        zg, zo = latent_head(cz)
        x_cond = 0 if hp.deterministic else cz + 1
        if hp.heads:      # heads j >= 1 of centred models predict offsets from the centre
            grids = [pixel_head(hp.mixtures, residual=j > 0 and (hp.interp or hp.anchor)) for j in range(b)]
            self.x_heads = nn.ModuleList(ConvNet(head_channels(hp, j) + x_cond, w, d, *grids[j],
                                                 first=hp.kernel, hidden=1) for j in range(b))
        else:
            self.x_net = ConvNet(3 * b + b + x_cond, w, d, pg, po)
        self.quantize = False
        if hp.deterministic:
            return
        self.post_x = ConvNet(3 * b, w, d, zg, zo)
        self.post_z = nn.ModuleList(ConvNet(cz * b, w, d, zg, zo) for _ in range(hp.latent_layers - 1))
        self.prior_z = nn.ModuleList(ConvNet(cz * b + b + cz, w, d, zg, zo)
                                     for _ in range(hp.latent_layers - 1))
        self.prior_top = ConvNet(cz * b + b, w, d, zg, zo)

    # --- pieces ---------------------------------------------------------------------------
    def _x_logp(self, xb: torch.Tensor, out: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """log p of pixel sub-images ``xb`` (M, 3, h, w) given network outputs; returns (M, 3, h, w)."""
        dense = [t if t is None else t.contiguous() for t in (xb, out, centre)]   # one layout to compile for
        return self.pixel_log_prob(*dense, self.hp.mixtures, self.quantize)

    def _z_params(self, out: torch.Tensor):
        cz = self.hp.z_channels
        mu, ls = out[:, :cz], out[:, cz:]
        if self.quantize:
            mu, ls = round_ste(mu), round_ste(ls)
        return mu, ls

    def _z_logp(self, sym: torch.Tensor, mu: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
        return log_prob_float(sym, mu.unsqueeze(-1), ls.unsqueeze(-1), None, Z_BINS)

    def _sample_z(self, out: torch.Tensor):
        """Reparameterised sample of a discretized logistic posterior and its log-probability."""
        mu, ls = self._z_params(out)
        u = torch.rand_like(mu).clamp(1e-6, 1 - 1e-6)
        cont = mu / MU_DEN + torch.exp(ls.clamp(LS_MIN, LS_MAX) / LS_DEN) * (torch.log(u) - torch.log1p(-u))
        sym = round_ste(cont.clamp(0, Z_BINS - 1))
        return sym, self._z_logp(sym, mu, ls)

    def _x_logp_all(self, X: torch.Tensor):
        """``_x_logp`` for the j-major stack of every sub-image of X (N, B, 3, h, w)."""
        if not self.hp.anchor:
            return self._x_logp
        centre = torch.cat([pixel_centre(self.hp, X, j) if j else torch.full_like(X[:, 0], 128.0 * MU_DEN)
                            for j in range(X.shape[1])], dim=0)
        return lambda t, o: self._x_logp(t, o, centre)

    def _pixels_logp(self, X: torch.Tensor, cond_of_j, js) -> torch.Tensor:
        """log p of sub-images ``js`` of X (N, B, 3, h, w) given the earlier ones: (N, len(js), 3, h, w).
        One network call for all of them (shared net), or one per head."""
        if not self.hp.heads:
            lp = self._ar_logp(self.x_net, X, pixel_input(X), cond_of_j, self._x_logp_all(X))
            return lp[:, list(js)]
        out = []
        for j in js:
            centre = pixel_centre(self.hp, X, j)
            params = self.x_heads[j](head_input(X, j, centre, cond_of_j(j)), self.quantize)
            out.append(self._x_logp(X[:, j], params, centre))
        return torch.stack(out, dim=1)

    def _ar_logp(self, net, sym_blocks, inp_blocks, cond_of_j, logp_fn):
        """log p of every sub-image given the earlier ones, all in one network call."""
        n, b = sym_blocks.shape[:2]
        out = net(ar_input_all(inp_blocks, cond_of_j), self.quantize)
        tgt = sym_blocks.transpose(0, 1).reshape(b * n, *sym_blocks.shape[2:])
        lp = logp_fn(tgt, out)
        return lp.reshape(b, n, *lp.shape[1:]).transpose(0, 1)      # (N, B, C, h, w)

    # --- loss -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arib_lambda: float = 0.0) -> dict:
        return self.loss(x, arib_lambda)

    def loss(self, x: torch.Tensor, arib_lambda: float = 0.0) -> dict:
        """Bits per dimension of a batch of uint8 patches (N, 3, P, P): negative ELBO / (3HW ln 2)."""
        hp = self.hp
        n = x.shape[0]
        dims = 3 * x.shape[2] * x.shape[3]
        if hp.deterministic:
            nll = self._pyramid_nll(x)
            bpd = nll / (dims * LN2)
            zero = torch.zeros((), device=x.device)
            return {"loss": bpd.mean(), "bpd": bpd.mean(), "bpd_x": bpd.mean(), "bpd_z": zero,
                    "penalty": zero}
        k, b, s = hp.k, hp.blocks, hp.split
        xs = x.to(torch.float32)
        X = subpixel(xs, k)                                   # (N, B, 3, h, w) symbols
        Xin = pixel_input(X)
        keep = (torch.arange(b, device=x.device) < s).to(Xin.dtype).view(1, b, 1, 1, 1)
        z_sym, logq = [], []
        out = self.post_x((Xin * keep).reshape(n, 3 * b, *X.shape[3:]), self.quantize)
        sym, lq = self._sample_z(out)
        z_sym.append(sym)
        logq.append(lq)
        for net in self.post_z:
            out = net(latent_input(subpixel(z_sym[-1], k), Z_BINS).flatten(1, 2), self.quantize)
            sym, lq = self._sample_z(out)
            z_sym.append(sym)
            logq.append(lq)
        # priors
        logp_z = []
        for i in range(hp.latent_layers):
            G = subpixel(z_sym[i], k)
            Gin = latent_input(G, Z_BINS)
            if i + 1 < hp.latent_layers:
                above = latent_input(z_sym[i + 1], Z_BINS)
                net, cond = self.prior_z[i], (lambda j, a=above: [a])
            else:
                net, cond = self.prior_top, (lambda j: [])
            logp_z.append(self._ar_logp(net, G, Gin, cond,
                                        lambda t, o: self._z_logp(t, *self._z_params(o))))
        # likelihood: sub-images j < s see z1
        z1 = latent_input(z_sym[0], Z_BINS)
        plane = torch.full_like(z1[:, :1], ACT_DEN)

        def x_cond(j):
            use = 1.0 if j < s else 0.0
            return [z1 * use, plane * use]

        logp_x = self._pixels_logp(X, x_cond, range(b))                        # (N, B, 3, h, w)
        per = lambda t: t.flatten(1).sum(1)
        nll_x = -per(logp_x)
        kl = sum(per(lq) for lq in logq) - sum(per(lp) for lp in logp_z)
        nelbo = nll_x + kl
        bpd = nelbo / (dims * LN2)
        # ArIB penalty (eq. 10): entropy of q(z1 | x_1:s) vs that of p(x_s+1: | x_1:s), in bits/dim
        h_q = -per(logq[0])
        h_p = -per(logp_x[:, s:])
        penalty = arib_penalty(h_q, h_p) / (dims * LN2) if s < b else torch.zeros_like(bpd)
        return {"loss": (bpd + arib_lambda * penalty).mean(), "bpd": bpd.mean(),
                "bpd_x": (nll_x / (dims * LN2)).mean(), "bpd_z": (kl / (dims * LN2)).mean(),
                "penalty": penalty.mean()}

    def _pyramid_nll(self, x: torch.Tensor) -> torch.Tensor:
        k = self.hp.k
        cur = x.to(torch.float32)
        total = torch.zeros(x.shape[0], device=x.device)
        while True:
            X = subpixel(cur, k)
            top = X.shape[-1] == 1 or X.shape[-1] % k
            lp = self._pixels_logp(X, lambda j: [], range(0 if top else 1, self.hp.blocks))
            total = total - lp.flatten(1).sum(1)
            if top:
                return total
            cur = X[:, 0]

    # --- export ---------------------------------------------------------------------------
    def integer_state(self) -> dict:
        nets = {name: mod.integer_params() for name, mod in self.named_modules()
                if isinstance(mod, ConvNet)}
        return {"hparams": self.hp.to_dict(), "nets": nets}


class IntegerSHVC(nn.Module):
    """Exact integer inference: every output is an int64 tensor, identical on any device/batch."""

    def __init__(self, state: dict):
        super().__init__()
        self.hp = HParams.from_dict(state["hparams"])
        self.nets = nn.ModuleDict({name.replace(".", "_"): IntConvNet(p)
                                   for name, p in state["nets"].items()})

    def _net(self, name: str) -> IntConvNet:
        return self.nets[name.replace(".", "_")]

    def with_patch(self, patch: int) -> "IntegerSHVC":
        """The same networks (shared, not copied) coding ``patch`` x ``patch`` tiles: every network
        is convolutional, so only the layout changes. ValueError if the hierarchy does not fit."""
        if patch == self.hp.patch:
            return self
        out = copy.copy(self)
        out.hp = dataclasses.replace(self.hp, patch=patch)
        return out

    def _run(self, name: str, a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._net(name)(a)

    # pixels -------------------------------------------------------------------------------
    def pixel_params(self, j: int, X: torch.Tensor, z1: torch.Tensor | None):
        """Raw pixel parameters of sub-image ``j``: (logit, mu, ls, beta) each (N, 3, K, h, w).

        ``X``: (N, B, 3, h, w) pixel symbols (only sub-images < j are read); ``z1``: (N, Cz, h, w)
        latent symbols or None (deterministic model).
        """
        cond = []
        if not self.hp.deterministic:
            n, _, _, h, w = X.shape
            if j < self.hp.split:
                zin = latent_input(z1, Z_BINS)
                cond = [zin, torch.full_like(zin[:, :1], ACT_DEN)]
            else:                                   # ArIB: sub-images after the split never see z
                cond = [torch.zeros(n, self.hp.z_channels + 1, h, w, device=X.device)]
        if self.hp.heads:
            out = self._run(f"x_heads.{j}", head_input(X, j, pixel_centre(self.hp, X, j), cond))
        else:
            out = self._run("x_net", ar_input(pixel_input(X), j, cond))
        return split_pixel(out, self.hp.mixtures)

    # latents ------------------------------------------------------------------------------
    def _z(self, out: torch.Tensor):
        cz = self.hp.z_channels
        return out[:, :cz], out[:, cz:]

    def posterior_z1(self, X: torch.Tensor):
        """q(z1 | x_1:s): (mu, ls) of shape (N, Cz, h, w)."""
        b, s = self.hp.blocks, self.hp.split
        keep = (torch.arange(b, device=X.device) < s).to(torch.float32).view(1, b, 1, 1, 1)
        inp = (pixel_input(X) * keep).flatten(1, 2)
        return self._z(self._run("post_x", inp))

    def posterior_z(self, i: int, z_i: torch.Tensor):
        """q(z_{i+1} | z_i) for i = 1..L-1 (1-based), from z_i symbols (N, Cz, H, W)."""
        inp = latent_input(subpixel(z_i, self.hp.k), Z_BINS).flatten(1, 2)
        return self._z(self._run(f"post_z.{i - 1}", inp))

    def prior_z(self, i: int, j: int, G: torch.Tensor, above: torch.Tensor | None):
        """p(sub-image j of z_i | earlier sub-images, z_{i+1}); ``G`` = g(z_i) symbols."""
        gin = latent_input(G, Z_BINS)
        if i < self.hp.latent_layers:
            return self._z(self._run(f"prior_z.{i - 1}", ar_input(gin, j, [latent_input(above, Z_BINS)])))
        return self._z(self._run("prior_top", ar_input(gin, j, [])))
