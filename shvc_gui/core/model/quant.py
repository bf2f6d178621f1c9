"""Integer-exact network arithmetic (Ballé et al., ICLR 2019) and its fake-quantized training twin.

Every activation that flows between layers is an integer in ``[ACT_MIN, ACT_MAX]`` holding the real
value ``a / ACT_DEN``. Inputs are brought to the same grid (pixels ``x - 128``, latent symbols
``2i - (n-1)``, indicator channels ``ACT_DEN``). Weights are symmetric 7-bit integers with one scale
per output channel. A convolution is a sum of at most ``fan_in * 63 * 128`` sized integer products, kept
below 2**24 so that float32 arithmetic is exact whatever the summation order (batch size, threads,
device) as long as nothing but products and sums touches it (:func:`exact_conv_available`). The
result is requantized in int64 by ``floor((h*M + B) / 2**SHIFT)``, which folds the weight scale,
the bias, and the affine map of the output onto its integer grid.

During training the same layer runs in float with straight-through rounding (``quantize=True``) or
with no rounding at all (``quantize=False``, the float model).
"""

from __future__ import annotations

import platform

import torch
import torch.nn as nn
import torch.nn.functional as F

ACT_DEN = 32          # real value = integer / ACT_DEN
ACT_MIN = 0
ACT_MAX = 127         # hidden activations: clamped ReLU on the integer grid
IN_MAX = 128          # |input| bound for integer-valued inputs
W_MAX = 63            # symmetric 7-bit weights
SHIFT = 24            # fixed-point shift of the requantization multiplier
EXACT_LIMIT = 2 ** 24  # float32 integers are exact below this

# F.conv2d is exact only where it multiplies and adds the integers as they are: oneDNN's direct or
# GEMM convolution (PyTorch asks it for convolution_direct) and PyTorch's own im2col + GEMM. NNPACK,
# cuDNN and the ARM back-ends may pick Winograd or FFT transforms, whose fractions round, so they
# never run here; neither does oneDNN when told to trade fp32 for bf16/tf32.
_CONV_X86 = platform.machine().lower() in ("x86_64", "amd64")
_EXACT_CONV_BACKENDS = {getattr(torch._C._ConvBackend, name) for name in ("Mkldnn", "Slow2d")
                        if hasattr(torch._C, "_ConvBackend") and hasattr(torch._C._ConvBackend, name)}


def exact_conv_available(a: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``F.conv2d(a, weight, padding=k//2)`` sums exactly on this machine (the CPU back-end
    PyTorch would choose for these shapes is one of the exact ones); else use unfold + matmul."""
    if a.device.type != "cpu" or not _CONV_X86 or not _EXACT_CONV_BACKENDS:
        return False
    precision = getattr(getattr(torch.backends.mkldnn, "conv", None), "fp32_precision", "none")
    if precision not in ("none", "ieee"):
        return False
    pad = weight.shape[-1] // 2
    try:
        backend = torch._C._select_conv_backend(a, weight, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1)
    except (RuntimeError, TypeError, AttributeError):
        return False
    return backend in _EXACT_CONV_BACKENDS


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


class QConv2d(nn.Module):
    """Convolution whose output is mapped to an integer grid: ``out = round(gain*r + offset)``.

    ``r`` is the real-valued convolution output. Hidden layers use gain ``ACT_DEN`` and clamp to
    ``[ACT_MIN, ACT_MAX]``; output layers use the gain/offset of the parameter they predict.
    """

    def __init__(self, cin: int, cout: int, ksize: int, gain, offset=0.0, clamp: bool = True):
        super().__init__()
        self.cin, self.cout, self.ksize = cin, cout, ksize
        if cin * ksize * ksize * W_MAX * IN_MAX >= EXACT_LIMIT:
            raise ValueError(f"fan-in {cin}x{ksize}x{ksize} too large for exact float32 sums")
        self.weight = nn.Parameter(torch.empty(cout, cin, ksize, ksize))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if not clamp:
            self.weight.data.mul_(0.1)
        gain = torch.as_tensor(gain, dtype=torch.float32).expand(cout).clone()
        offset = torch.as_tensor(offset, dtype=torch.float32).expand(cout).clone()
        self.register_buffer("gain", gain)
        self.register_buffer("offset", offset)
        self.clamp = clamp

    # --- float / fake-quantized training path -------------------------------------------------
    def weight_scale(self) -> torch.Tensor:
        return self.weight.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / W_MAX

    def forward(self, a: torch.Tensor, quantize: bool) -> torch.Tensor:
        """``a`` holds integer-grid values (real = a / ACT_DEN); returns integer-grid values."""
        w = self.weight
        if quantize:
            s = self.weight_scale().view(-1, 1, 1, 1)
            w = round_ste(w / s).clamp(-W_MAX, W_MAX) * s
        r = F.conv2d(a / ACT_DEN, w, self.bias, padding=self.ksize // 2).float()  # fp32 after autocast
        out = r * self.gain.view(1, -1, 1, 1) + self.offset.view(1, -1, 1, 1)
        if quantize:
            out = round_ste(out)
        if self.clamp:
            out = out.clamp(ACT_MIN, ACT_MAX)
        return out

    # --- export to integers ---------------------------------------------------------------------
    def integer_params(self) -> dict:
        """Integer weights (int8), multipliers and offsets (int64) of the exact inference path."""
        with torch.no_grad():
            s = self.weight_scale().double()
            w_int = torch.round(self.weight.double() / s.view(-1, 1, 1, 1)).clamp(-W_MAX, W_MAX)
            gain, offset, bias = self.gain.double(), self.offset.double(), self.bias.double()
            mult = torch.round(gain * s / ACT_DEN * 2 ** SHIFT)
            add = torch.round((gain * bias + offset) * 2 ** SHIFT) + 2 ** (SHIFT - 1)
        return {"w": w_int.to(torch.int8), "m": mult.to(torch.int64), "b": add.to(torch.int64),
                "clamp": torch.tensor(int(self.clamp))}


class IntConv2d(nn.Module):
    """The exact inference twin of :class:`QConv2d`, built from its exported integers."""

    def __init__(self, params: dict):
        super().__init__()
        w = params["w"]
        self.ksize = w.shape[-1]
        self.cout = w.shape[0]
        self.register_buffer("w", w.to(torch.float32))
        self.register_buffer("m", params["m"].to(torch.int64).view(1, -1, 1))
        self.register_buffer("b", params["b"].to(torch.int64).view(1, -1, 1))
        self.clamp = bool(int(params["clamp"]))
        bound = float(self.w.abs().flatten(1).sum(dim=1).max()) * IN_MAX
        if bound >= EXACT_LIMIT:
            raise ValueError("integer layer could overflow exact float32 sums")

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """``a``: float32 tensor of integers (N, C, H, W); returns int64 (N, Cout, H, W)."""
        n, _, h, w = a.shape
        if exact_conv_available(a, self.w):
            acc = F.conv2d(a, self.w, padding=self.ksize // 2).reshape(n, self.cout, h * w)
        else:   # unfold + matmul: no Winograd/FFT transform can leave the integers
            cols = F.unfold(a, self.ksize, padding=self.ksize // 2)      # (N, C*k*k, H*W)
            acc = torch.matmul(self.w.view(self.cout, -1), cols)         # exact: |sum| < 2**24
        out = (acc.to(torch.int64) * self.m + self.b) >> SHIFT            # floor((h*M + B) / 2**SHIFT)
        if self.clamp:
            out = out.clamp(ACT_MIN, ACT_MAX)
        return out.view(n, self.cout, h, w)
