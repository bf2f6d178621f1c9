"""Sub-pixel reorder g(x; k), its inverse, autoregressive input assembly and the conv networks."""

from __future__ import annotations

import torch
import torch.nn as nn

from .quant import ACT_DEN, IntConv2d, QConv2d, run_layers


def subpixel(x: torch.Tensor, k: int) -> torch.Tensor:
    """g(x; k), paper eq. 8: (N, C, H, W) -> (N, k*k, C, H/k, W/k).

    Sub-image ``i`` holds the pixels at offset ``(i // k, i % k)`` of every k x k cell, all C channels
    together, so the channel-linear autoregression runs inside one sub-image.
    """
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // k, k, w // k, k).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, k * k, c, h // k, w // k)


def subpixel_inverse(y: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`subpixel`: (N, k*k, C, h, w) -> (N, C, h*k, w*k)."""
    n, b, c, h, w = y.shape
    x = y.reshape(n, k, k, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, h * k, w * k)


def pixel_input(sym: torch.Tensor) -> torch.Tensor:
    """Pixel symbols 0..255 onto the activation grid (real value (x - 128) / 32)."""
    return sym.to(torch.float32) - 128.0


def latent_input(sym: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Latent symbols 0..n-1 onto the activation grid: real value (i - (n-1)/2) / 16."""
    return 2.0 * sym.to(torch.float32) - (n_bins - 1)


def ar_input(blocks: torch.Tensor, j: int, cond: list[torch.Tensor]) -> torch.Tensor:
    """Network input for sub-image ``j``: sub-images ``< j`` (later ones zeroed), a one-hot plane for
    ``j``, and conditioning tensors. ``blocks``: (N, B, C, h, w) on the activation grid."""
    n, b, c, h, w = blocks.shape
    keep = (torch.arange(b, device=blocks.device) < j).to(blocks.dtype).view(1, b, 1, 1, 1)
    onehot = torch.zeros(n, b, h, w, device=blocks.device, dtype=blocks.dtype)
    onehot[:, j] = ACT_DEN
    return torch.cat([(blocks * keep).reshape(n, b * c, h, w), onehot, *cond], dim=1)


def ar_input_all(blocks: torch.Tensor, cond_of_j) -> torch.Tensor:
    """Inputs for every sub-image stacked on the batch axis (training computes all conditionals in
    one network call): (B*N, ...), ordered j-major. ``cond_of_j(j)`` gives the conditioning list."""
    b = blocks.shape[1]
    return torch.cat([ar_input(blocks, j, cond_of_j(j)) for j in range(b)], dim=0)


class ConvNet(nn.Module):
    """A ``first`` x ``first`` conv, ``depth - 2`` ``hidden`` x ``hidden`` convs (each with a clamped
    ReLU), then a 1x1 output layer onto parameter grids."""

    def __init__(self, cin: int, width: int, depth: int, out_gain, out_offset, first: int = 3,
                 hidden: int = 3):
        super().__init__()
        out_gain = torch.as_tensor(out_gain, dtype=torch.float32)
        layers = [QConv2d(cin, width, first, gain=ACT_DEN)]
        layers += [QConv2d(width, width, hidden, gain=ACT_DEN) for _ in range(depth - 2)]
        layers += [QConv2d(width, out_gain.numel(), 1, gain=out_gain, offset=out_offset, clamp=False)]
        self.layers = nn.ModuleList(layers)

    def forward(self, a: torch.Tensor, quantize: bool) -> torch.Tensor:
        for layer in self.layers:
            a = layer(a, quantize)
        return a

    def integer_params(self) -> list[dict]:
        return [layer.integer_params() for layer in self.layers]


class IntConvNet(nn.Module):
    """Exact integer twin of :class:`ConvNet`; returns int64 parameters."""

    def __init__(self, params: list[dict]):
        super().__init__()
        self.layers = nn.ModuleList(IntConv2d(p) for p in params)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Float32 integers in, int64 parameters out; hidden activations travel in the fastest exact
        form (:func:`quant.run_layers`)."""
        return run_layers(self.layers, a)
