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
a sample, :data:`PRIOR_SHARES`). In a list of at most :data:`CONTEXT_COLOURS` colours the counts are
also conditioned on the colour of a decoded neighbour, counted over the sub-images coded before
(:meth:`ColourSet.at_step`). A texture reduced to a few dozen dithered inks is such an image: the
network predicts smooth values, and which ink sits next to which says more than it does.

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
CONTEXT_COLOURS = 64              # lists of at most this many colours condition their counts on a neighbour
CONTEXT_REF = {1: 0, 2: 0, 3: 2}  # sub-image j's neighbour: the pixel of this sub-image at the same position
                                  # (left of j = 1, above j = 2, left of j = 3)
CONTEXT_WEIGHT = 64               # a pair counted before weighs this many units of a colour's weight


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

    def support(self, c: int, prev: list[torch.Tensor], size: int, context: np.ndarray | None = None) -> Support:
        return self._supports[c].select(np.zeros(size, np.int64))

    def at_step(self, j: int, pairs: np.ndarray | None) -> "ChannelSets":
        return self

    def contextual(self) -> bool:
        return False

    def context(self, X: torch.Tensor, a: int, b: int, vw: int) -> None:
        return None


class ColourSet:
    """The allowed values of each channel given the channels before it, for a sorted colour list
    (N, 3) uint8 (:func:`image_colours`), with how often each colour occurs when ``prior`` is given
    (each channel's weights: the colours' weights summed over those that share the value and the
    channels before it).

    With ``pairs`` (N, N) and ``ref`` (:meth:`at_step`: format version 6, lists of at most
    :data:`CONTEXT_COLOURS`), the weights depend on the colour of a neighbour that is already
    decoded, the pixel of sub-image ``ref`` at the same position: ``pairs[k, i]`` counts the
    positions coded so far whose neighbour has colour k and that have colour i, and a position whose
    neighbour has colour k weighs colour i ``CONTEXT_WEIGHT * pairs[k, i] + weights[i]``."""

    def __init__(self, colours: np.ndarray, prior: Prior | None = None, pairs: np.ndarray | None = None,
                 ref: int | None = None):
        check_colours(colours)
        self.colours, self.prior, self.ref = colours, prior, (None if pairs is None else ref)
        c = colours.astype(np.int64)
        self._packed = packed_rgb(colours)
        reds, red_id = np.unique(c[:, 0], return_inverse=True)
        two, pair_id = np.unique(c[:, 0] * BINS + c[:, 1], return_inverse=True)
        # Rows of the list are sorted, so each group's values come out sorted and distinct.
        self._supports = [Support.of_sets([reds], BINS),
                          Support.of_sets([np.unique(c[red_id == i, 1]) for i in range(len(reds))], BINS),
                          Support.of_sets([c[pair_id == i, 2] for i in range(len(two))], BINS)]
        self._sets = (1, len(reds), len(two))                   # allowed sets per channel
        if prior is not None:
            w = np.asarray(prior.weights, np.int64)[None, :]
            weights = w if self.ref is None else CONTEXT_WEIGHT * np.asarray(pairs, np.int64) + w   # (contexts, N)
            contexts = len(weights)
            for ch, (rows, share) in enumerate(zip((np.zeros(len(c), np.int64), red_id, pair_id), prior.shares)):
                n = self._sets[ch]
                table = np.zeros((contexts * n, BINS), np.int64)              # row k * n + set
                np.add.at(table, ((np.arange(contexts)[:, None] * n + rows).ravel(),
                                  np.broadcast_to(c[:, ch], weights.shape).ravel()), weights.ravel())
                sup = self._supports[ch]
                tiled = Support(sup.ids, np.tile(sup.edge, (contexts, 1)), np.tile(sup.rank, (contexts, 1)))
                self._supports[ch] = tiled.with_prior(table, int(share), SHARE_DEN)
        self._red = np.zeros(BINS, np.int64)
        self._red[reds] = np.arange(len(reds))
        self._pair = np.zeros(BINS * BINS, np.int64)
        self._pair[two] = np.arange(len(two))

    def support(self, c: int, prev: list[torch.Tensor], size: int, context: np.ndarray | None = None) -> Support:
        """The allowed values of channel ``c`` for a run of ``size`` symbols whose channels < c are
        ``prev`` (tensors of ``size`` elements each, in the run's order), and whose neighbours have
        the colours ``context`` (:meth:`context`; used only by a list with pairs)."""
        if c == 0:
            ids = np.zeros(size, np.int64)
        else:
            red = prev[0].reshape(-1).cpu().numpy().astype(np.int64)
            if c == 1:
                ids = self._red[red]
            else:
                ids = self._pair[red * BINS + prev[1].reshape(-1).cpu().numpy().astype(np.int64)]
        if self.ref is not None:
            ids = context * self._sets[c] + ids
        return self._supports[c].select(ids)

    def indices(self, pixels: torch.Tensor) -> np.ndarray:
        """The list index of each pixel of ``pixels`` (3, ...) uint8, flattened (every pixel must be
        one of the list's colours)."""
        rgb = pixels.reshape(3, -1).T.cpu().numpy()
        return np.minimum(np.searchsorted(self._packed, packed_rgb(rgb)), len(self._packed) - 1)

    def context(self, X: torch.Tensor, a: int, b: int, vw: int) -> np.ndarray | None:
        """The colours (list indices) of the neighbours of rows [a, b), columns [0, vw) of the step's
        sub-image, in row-major order; None without pairs."""
        return None if self.ref is None else self.indices(X[self.ref, :, a:b, :vw])

    def pairs(self, X: torch.Tensor, j: int, vh: int, vw: int) -> np.ndarray:
        """(N, N) counts of (neighbour colour, colour) over the ``vh`` x ``vw`` positions of sub-image ``j``
        of a level ``X`` (:data:`CONTEXT_REF`)."""
        n = len(self._packed)
        if j not in CONTEXT_REF or not vh * vw:
            return np.zeros((n, n), np.int64)
        k, i = self.indices(X[CONTEXT_REF[j], :, :vh, :vw]), self.indices(X[j, :, :vh, :vw])
        return np.bincount(k * n + i, minlength=n * n).reshape(n, n)

    def no_pairs(self) -> np.ndarray:
        """(N, N) zeros: the pairs before the first step."""
        return np.zeros((len(self.colours),) * 2, np.int64)

    def contextual(self) -> bool:
        """Whether the steps' tables depend on the pairs coded before them (:meth:`at_step`)."""
        return self.prior is not None and len(self.colours) <= CONTEXT_COLOURS

    def at_step(self, j: int, pairs: np.ndarray | None) -> "ColourSet":
        """The tables of sub-image ``j`` of a level, ``pairs`` coded before it: conditioned on each
        position's neighbour when the list is :meth:`contextual` and ``j`` has one, else these."""
        if not self.contextual() or j not in CONTEXT_REF or pairs is None:
            return self
        return ColourSet(self.colours, self.prior, pairs, CONTEXT_REF[j])
