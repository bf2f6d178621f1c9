"""The values an image holds: images of few colours, or of few levels per channel, code only those
(format version 4, ``det``).

A photograph holds tens of thousands of colours, and the model spreads probability over all 256
values of each channel. An image of few colours (a palette image saved as RGB, a scan reduced to a
handful of inks, a grey image stored as RGB) uses only some of them; PNG, WebP and JPEG-XL code such
images through a palette. Here the model stays what it is and the coder restricts each sub-pixel to
the values the image's colour list allows (:class:`~.mixture.Support`):

* channel 0 (red) to the red values of the list;
* channel 1 (green) to the greens of the colours with the pixel's red;
* channel 2 (blue) to the blues of the colours with the pixel's red and green.

The mass of every value left out goes to its nearest allowed neighbour, so no sub-pixel costs more
than without the list; a channel with one allowed value costs nothing. The list itself costs 24 bits
a colour, so it is used only for at most :data:`MAX_COLOURS` colours and when it takes at most
:data:`MAX_SHARE` of the raw pixels (:func:`image_colours`).

From format version 6 a colour list may carry how often each colour occurs (:class:`~.payload.Prior`,
one byte a colour): then part of each channel's table goes by those counts instead of by the network
(:meth:`~.mixture.Support.with_prior`; the encoder picks the part per channel by the code length of
a sample, :data:`PRIOR_SHARES`). A texture reduced to a few dozen dithered inks is such an image:
the network predicts smooth values, and the inks' frequencies say more than it does.

An image of more colours may still hold few levels per channel (a photo stored with 5 or 6 bits a
channel and scaled to 8, a strong contrast stretch): then each channel is restricted to its own
levels (:class:`ChannelSets`, 96 bytes of masks), when some channel uses at most half of the
values between its darkest and brightest (:func:`channel_masks`). :func:`choose` takes the list
first, then the masks.
"""

from __future__ import annotations

import numpy as np
import torch

from .mixture import Support
from .payload import MAX_COLOURS, SHARE_DEN, Prior, check_colours, packed_rgb

MAX_SHARE = 0.01                  # the list or masks take at most this share of the raw pixels' 24 bits each
BINS = 256
MASK_BYTES = 3 * BINS // 8        # the channel masks: one bit per value and channel
PRIOR_SHARES = (0, 2, 4, 8, 12, 14, 15)   # the encoder's candidates for a prior's shares (1/SHARE_DEN; ties: the earlier)


def _affordable(nbytes: int, rgb: np.ndarray) -> bool:
    return nbytes <= MAX_SHARE * 3 * rgb.shape[0] * rgb.shape[1]


def image_colours(rgb: np.ndarray) -> np.ndarray | None:
    """The distinct colours of ``rgb`` (H, W, 3) uint8, sorted (N, 3) uint8, when the coder should
    restrict to them: at most MAX_COLOURS, and the list no more than MAX_SHARE of the raw pixels;
    else None."""
    h, w = rgb.shape[:2]
    limit = min(MAX_COLOURS, int(MAX_SHARE * h * w))
    if limit < 1:
        return None
    seen = np.zeros(1 << 24, dtype=bool)
    seen[packed_rgb(rgb)] = True
    if np.count_nonzero(seen) > limit:
        return None
    packed = np.flatnonzero(seen).astype(np.uint32)
    return np.stack([(packed >> s) & 0xFF for s in (16, 8, 0)], axis=1).astype(np.uint8)


def colour_weights(rgb: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """How often each of ``colours`` (:func:`image_colours` of ``rgb``) occurs, (N,) uint8: scaled
    so that the commonest is 255, and at least 1."""
    counts = np.bincount(np.searchsorted(packed_rgb(colours), packed_rgb(rgb)), minlength=len(colours))
    return np.maximum(1, (255 * counts + counts.max() // 2) // counts.max()).astype(np.uint8)


def channel_masks(rgb: np.ndarray) -> np.ndarray | None:
    """The values each channel of ``rgb`` uses, (3, 256) bool, when the coder should restrict to
    them: some channel uses at most half of the values between its smallest and largest, and the
    masks take no more than MAX_SHARE of the raw pixels; else None."""
    if not _affordable(MASK_BYTES, rgb):
        return None
    masks = np.stack([np.bincount(rgb[..., c].ravel(), minlength=BINS) > 0 for c in range(3)])
    for m in masks:
        used = np.flatnonzero(m)
        if 2 * len(used) <= used[-1] - used[0] + 1:
            return masks
    return None


def choose(rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The encoder's restriction of ``rgb``: (colour list, None), (None, channel masks) or (None, None)."""
    colours = image_colours(rgb)
    return (colours, None) if colours is not None else (None, channel_masks(rgb))


def allowed(colours: np.ndarray | None, masks: np.ndarray | None,
            prior: Prior | None = None) -> "ColourSet | ChannelSets | None":
    """What the coder asks for each channel's allowed values (None: every value)."""
    if colours is not None:
        return ColourSet(colours, prior)
    return None if masks is None else ChannelSets(masks)


class ChannelSets:
    """Each channel restricted to its own values, (3, 256) bool masks (:func:`channel_masks`)."""

    def __init__(self, masks: np.ndarray):
        self._supports = [Support.of_sets([np.flatnonzero(m)], BINS) for m in masks]

    def support(self, c: int, prev: list[torch.Tensor], size: int) -> Support:
        return self._supports[c].select(np.zeros(size, np.int64))


class ColourSet:
    """The allowed values of each channel given the channels before it, for a sorted colour list
    (N, 3) uint8 (:func:`image_colours`), with how often each colour occurs when ``prior`` is given
    (each channel's weights: the colours' weights summed over those that share the value and the
    channels before it)."""

    def __init__(self, colours: np.ndarray, prior: Prior | None = None):
        check_colours(colours)
        c = colours.astype(np.int64)
        reds, red_id = np.unique(c[:, 0], return_inverse=True)
        pairs, pair_id = np.unique(c[:, 0] * BINS + c[:, 1], return_inverse=True)
        # Rows of the list are sorted, so each group's values come out sorted and distinct.
        self._supports = [Support.of_sets([reds], BINS),
                          Support.of_sets([np.unique(c[red_id == i, 1]) for i in range(len(reds))], BINS),
                          Support.of_sets([c[pair_id == i, 2] for i in range(len(pairs))], BINS)]
        if prior is not None:
            w = np.asarray(prior.weights, np.int64)
            sets = (np.zeros(len(c), np.int64), red_id, pair_id)
            for ch, (rows, share) in enumerate(zip(sets, prior.shares)):
                weights = np.zeros((rows.max() + 1, BINS), np.int64)
                np.add.at(weights, (rows, c[:, ch]), w)
                self._supports[ch] = self._supports[ch].with_prior(weights, int(share), SHARE_DEN)
        self._red = np.zeros(BINS, np.int64)
        self._red[reds] = np.arange(len(reds))
        self._pair = np.zeros(BINS * BINS, np.int64)
        self._pair[pairs] = np.arange(len(pairs))

    def support(self, c: int, prev: list[torch.Tensor], size: int) -> Support:
        """The allowed values of channel ``c`` for a run of ``size`` symbols whose channels < c are
        ``prev`` (tensors of ``size`` elements each, in the run's order)."""
        if c == 0:
            return self._supports[0].select(np.zeros(size, np.int64))
        red = prev[0].reshape(-1).cpu().numpy().astype(np.int64)
        if c == 1:
            return self._supports[1].select(self._red[red])
        green = prev[1].reshape(-1).cpu().numpy().astype(np.int64)
        return self._supports[2].select(self._pair[red * BINS + green])
