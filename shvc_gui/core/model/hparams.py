"""All architecture hyper-parameters of an SHVC model, in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class HParams:
    patch: int = 64            # side of the square patches the model codes
    k: int = 2                 # sub-pixel reorder factor g(x; k): k*k sub-images
    width: int = 48            # hidden channels of every network
    depth: int = 4             # conv layers per network (>= 2)
    latent_layers: int = 4     # L; 0 gives the deterministic (pure sub-pixel autoregressive) model
    z_channels: int = 8        # channels of every latent layer
    mixtures: int = 5          # logistic mixture components for pixels
    split: int = 2             # ArIB split s: sub-images 1..s see z, s+1..k*k do not (s = k*k: no split)
    anchor: bool = False       # pixel means of sub-images j >= 1 relative to the co-located pixel of
                               # sub-image 0 (else to the fixed 128); older weights have False
    heads: bool = False        # one pixel network per sub-image position j (shared by the pyramid's
                               # levels): a kernel x kernel layer over the known sub-images, then 1x1
                               # layers; False: one network for every j with a one-hot plane
    interp: bool = False       # pixel means of sub-images j >= 1 relative to the interpolation of
                               # their known neighbours (k = 2), which the network also sees
    kernel: int = 3            # first-layer kernel of the heads (later layers are 1x1)

    def __post_init__(self) -> None:
        if self.k not in (2, 4):
            raise ValueError("k must be 2 or 4")
        if self.depth < 2 or self.width < 1 or self.z_channels < 1 or self.mixtures < 1:
            raise ValueError("depth >= 2, width, z_channels and mixtures >= 1")
        if not 1 <= self.split <= self.k * self.k:
            raise ValueError("split must be in 1..k*k")
        if self.interp and (self.k != 2 or self.anchor):
            raise ValueError("interp needs k = 2 and excludes anchor")
        if self.kernel not in (1, 3, 5, 7):
            raise ValueError("kernel must be 1, 3, 5 or 7")
        if self.patch % (self.k ** (self.latent_layers + 1)) and self.latent_layers:
            raise ValueError("patch must be divisible by k**(latent_layers + 1)")

    @property
    def blocks(self) -> int:
        return self.k * self.k

    @property
    def deterministic(self) -> bool:
        return self.latent_layers == 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HParams":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
