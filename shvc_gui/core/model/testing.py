"""Small deterministic models and images for tests, benchmarks and the GUI's self-check.

Nothing here is used to code user files; it exists so every test builds the same tiny models.
"""

from __future__ import annotations

import numpy as np
import torch

from .hparams import HParams
from .shvc import SHVC, IntegerSHVC


def tiny_hparams(latent_layers: int = 3, patch: int = 64, **kw) -> HParams:
    base = dict(patch=patch, width=12, depth=3, latent_layers=latent_layers, z_channels=3, mixtures=2, split=2)
    base.update(kw)
    return HParams(**base)


def tiny_model(latent_layers: int = 3, patch: int = 64, seed: int = 0, **kw) -> IntegerSHVC:
    """A random-initialised integer model (fixed seed) with a name and a stand-in sha256."""
    torch.manual_seed(seed)
    m = SHVC(tiny_hparams(latent_layers, patch, **kw))
    m.quantize = True
    im = IntegerSHVC(m.integer_state()).eval()
    im.name = f"tiny-L{latent_layers}-p{patch}-s{seed}"
    im.sha256 = f"{seed:02x}{latent_layers:02x}{patch:04x}".ljust(64, "0")
    return im


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random picture with fine noise: HxWx3 uint8, photograph-like statistics."""
    rng = np.random.default_rng(seed)
    base = torch.tensor(rng.normal(size=(1, 3, max(2, h // 16), max(2, w // 16))))
    img = torch.nn.functional.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)[0]
    img = (img - img.min()) / (img.max() - img.min() + 1e-9) * 235 + 10
    img = img.permute(1, 2, 0).numpy() + rng.normal(scale=2.0, size=(h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
