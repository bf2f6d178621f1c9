"""The layout of a payload: how patches are cut into groups and independent streams, the seed
under each stream, and the bytes that hold them (docs/FORMAT.md). Whole-image payloads (version 3,
``det``) have the same bytes with no seed; their streams are cut by :mod:`.pyramid`.

Payload (little-endian u32 words): ``count`` streams, [version >= 2: ``lanes`` of the rANS coder],
``count`` x (seed words cut from the bottom, stream length), then the streams back to back.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ..errors import FormatError
from .rans import SYMBOLS_PER_LANE

VERSIONS = (1, 2, 3, 4, 5, 6)     # format versions whose payloads the coders write and read
PATCH_VERSION = 2                 # the patch coder's newest payload (versions 3, 4 code shvc/arib as version 2 does)
WHOLE_VERSION = 3                 # from this version on, ``det`` payloads code the whole image (:mod:`.whole`)
TUNED_VERSION = 4                 # from this version on, whole-image payloads start with the allowed values
                                  # (:mod:`.colours`) and scale offsets (:mod:`.whole`)
BUCKETED_VERSION = 5              # from this version on, each channel's scale offsets are one per scale bucket,
                                  # and the untuned sub-images share one offset per channel
PRIOR_VERSION = 6                 # from this version on, a colour list may carry how often each colour occurs
                                  # (:class:`Prior`, :mod:`.colours`)
WIDE_LANE_SYMBOLS = 8192          # version 5 whole images: about this many symbols per rANS lane (else
                                  # rans.SYMBOLS_PER_LANE)
SCALE_EDGES = (-24, -12, 0, 8, 16, 24, 40)   # version 5: a sub-pixel's bucket is the number of these edges at or
                                  # below its mixture's weighted mean log-scale (1/16 nat, mixture.scale_buckets)
MAX_COLOURS = 256                 # the longest colour list a payload holds
VALUES_ALL, VALUES_COLOURS, VALUES_CHANNELS, VALUES_PRIOR = 0, 1, 2, 3   # kinds of the allowed-values section
                                  # (:func:`pack_values`; VALUES_PRIOR from PRIOR_VERSION)
SHARE_DEN = 16                    # a Prior's share of a table is shares[c] / SHARE_DEN (0 .. 15/16)
MAX_OFFSET = 64                   # scale offsets lie in [-MAX_OFFSET, MAX_OFFSET] (1/16 nat)
MAX_POP_BITS = 24                 # no popped symbol costs more (both coders: tables of 2^20, >= 1 each)
STREAM_SUBPIXELS = 12_000_000     # auto_streams: about this many coded sub-pixels per stream


def whole_image(version: int, variant: str) -> bool:
    """Whether a payload of this format version and variant codes the whole image (:mod:`.whole`)
    rather than patches (:mod:`.bitsback`; latent variants keep patches in every version)."""
    return version >= WHOLE_VERSION and variant == "det"


def tuned(version: int, variant: str) -> bool:
    """Whether a payload of this format version and variant starts with the allowed values and
    scale offsets (:func:`split_tuning`)."""
    return whole_image(version, variant) and version >= TUNED_VERSION


def symbols_per_lane(version: int, variant: str) -> int:
    """About how many symbols each rANS lane of a stream codes (``rans.lanes_for``): from version 5
    whole images take half the lanes, so their start-up bits (about 48 a lane) halve (the
    shvc-det-w128 validation photographs: about 0.4 % of the payload with 4096)."""
    return WIDE_LANE_SYMBOLS if whole_image(version, variant) and version >= BUCKETED_VERSION else SYMBOLS_PER_LANE


def offset_buckets(version: int) -> int:
    """Scale offsets per channel of a tuned sub-image: one per scale bucket from version 5, else one."""
    return len(SCALE_EDGES) + 1 if version >= BUCKETED_VERSION else 1


class Prior(NamedTuple):
    """How often each colour of a colour list occurs, for the coder's tables (version 6, :mod:`.colours`)."""
    weights: np.ndarray           # (N,) uint8 >= 1: each colour's count, scaled so the commonest is 255
    shares: np.ndarray            # (3,) int64 in [0, SHARE_DEN): per channel, the part of its table that goes by
                                  # the weights (the rest by the network), in 1/SHARE_DEN


class ScaleOffsets(NamedTuple):
    """The scale offsets of a tuned payload (1/16 nat, added to the network's log-scales)."""
    untuned: np.ndarray           # (3,) int64: every sub-image too small for its own (0 before version 5)
    tuned: np.ndarray             # (steps, 3, offset_buckets(version)) int64: each tuned sub-image's


def split_tuning(payload: bytes, steps: int, version: int) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                    Prior | None, ScaleOffsets, bytes]:
    """(colour list or None, channel value masks or None, the colour list's prior or None, scale
    offsets, the stream table and streams) of a tuned payload of format ``version``; ``steps``: the
    tuned sub-images of the image (``pyramid.tuned_steps``)."""
    colours, masks, prior, payload = split_values(payload, version)
    offsets, payload = split_offsets(payload, steps, version)
    return colours, masks, prior, offsets, payload


def pack_values(colours: np.ndarray | None = None, masks: np.ndarray | None = None,
                prior: Prior | None = None) -> bytes:
    """The allowed-values section: u32 kind, then for VALUES_COLOURS u32 N and the colours (N, 3)
    uint8, for VALUES_PRIOR the same followed by the prior's shares (3 bytes) and weights (N bytes),
    for VALUES_CHANNELS the masks (3, 256) bool as 3 x 32 bytes (bit v of byte v // 8, least
    significant first: value v allowed); zero-padded to whole words."""
    if colours is not None:
        kind = VALUES_COLOURS if prior is None else VALUES_PRIOR
        data = struct.pack("<II", kind, len(colours)) + np.ascontiguousarray(colours, np.uint8).tobytes()
        if prior is not None:
            data += np.asarray(prior.shares, np.uint8).tobytes() + np.asarray(prior.weights, np.uint8).tobytes()
    elif masks is not None:
        data = struct.pack("<I", VALUES_CHANNELS) + np.packbits(masks, axis=1, bitorder="little").tobytes()
    else:
        data = struct.pack("<I", VALUES_ALL)
    return data + bytes(-len(data) % 4)


def split_values(payload: bytes, version: int = VERSIONS[-1]) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                      Prior | None, bytes]:
    """(the colour list (N, 3) uint8 or None, the channel masks (3, 256) bool or None, the colour
    list's prior or None, the rest of the payload), checked: a kind that format ``version`` knows,
    1..MAX_COLOURS colours in increasing 0xRRGGBB order, every channel with an allowed value, prior
    weights >= 1 and shares below SHARE_DEN, zero padding."""
    if len(payload) < 4:
        raise FormatError("The compressed stream is truncated.")
    kind = struct.unpack_from("<I", payload)[0]
    if kind == VALUES_ALL:
        return None, None, None, payload[4:]
    if kind == VALUES_CHANNELS:
        if len(payload) < 4 + 3 * 32:
            raise FormatError("The compressed stream is truncated.")
        masks = np.unpackbits(np.frombuffer(payload, np.uint8, 96, 4).reshape(3, 32), axis=1,
                              bitorder="little").astype(bool)
        if not masks.any(axis=1).all():
            raise FormatError("The compressed stream is corrupt (bad channel value masks).")
        return None, masks, None, payload[4 + 96:]
    if kind not in (VALUES_COLOURS, VALUES_PRIOR) or (kind == VALUES_PRIOR and version < PRIOR_VERSION):
        raise FormatError("The compressed stream is corrupt (bad allowed-values section).")
    if len(payload) < 8:
        raise FormatError("The compressed stream is truncated.")
    n = struct.unpack_from("<I", payload, 4)[0]
    if not 1 <= n <= MAX_COLOURS:
        raise FormatError("The compressed stream is corrupt (bad colour list).")
    used = 3 * n + (3 + n if kind == VALUES_PRIOR else 0)
    end = 8 + -(-used // 4) * 4
    if len(payload) < end:
        raise FormatError("The compressed stream is truncated.")
    if any(payload[8 + used:end]):
        raise FormatError("The compressed stream is corrupt (bad colour list).")
    colours = np.frombuffer(payload, np.uint8, 3 * n, 8).reshape(n, 3)
    check_colours(colours)
    prior = None
    if kind == VALUES_PRIOR:
        shares = np.frombuffer(payload, np.uint8, 3, 8 + 3 * n).astype(np.int64)
        weights = np.frombuffer(payload, np.uint8, n, 8 + 3 * n + 3)
        if (shares >= SHARE_DEN).any() or (weights == 0).any():
            raise FormatError("The compressed stream is corrupt (bad colour counts).")
        prior = Prior(weights, shares)
    return colours, None, prior, payload[end:]


def packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """Colours (..., 3) uint8 as 0xRRGGBB words, flattened (int64)."""
    c = rgb.reshape(-1, 3).astype(np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def check_colours(colours: np.ndarray) -> None:
    """1..MAX_COLOURS colours (N, 3) uint8 in increasing 0xRRGGBB order (so no colour twice)."""
    packed = packed_rgb(colours)
    if not 1 <= len(packed) <= MAX_COLOURS or (np.diff(packed) <= 0).any():
        raise FormatError("The compressed stream is corrupt (bad colour list).")


def pack_offsets(offsets: ScaleOffsets, version: int) -> bytes:
    """The scale offsets section: from version 5 the untuned sub-images' offset per channel, then
    one int8 per (tuned step, channel, bucket) in that order; zero-padded to whole words."""
    shared = offsets.untuned if version >= BUCKETED_VERSION else np.zeros(0)
    data = np.asarray(shared, np.int8).tobytes() + np.asarray(offsets.tuned, np.int8).tobytes()
    return data + bytes(-len(data) % 4)


def split_offsets(payload: bytes, steps: int, version: int) -> tuple[ScaleOffsets, bytes]:
    """(the scale offsets of ``steps`` tuned sub-images, the rest of the payload), each offset checked
    to lie in [-MAX_OFFSET, MAX_OFFSET] and the padding to be zeros."""
    shared, buckets = (3 if version >= BUCKETED_VERSION else 0), offset_buckets(version)
    n = shared + 3 * steps * buckets
    end = -(-n // 4) * 4
    if len(payload) < end:
        raise FormatError("The compressed stream is truncated.")
    values = np.frombuffer(payload, np.int8, n).astype(np.int64)
    if any(payload[n:end]) or (np.abs(values) > MAX_OFFSET).any():
        raise FormatError("The compressed stream is corrupt (bad scale offsets).")
    untuned = values[:3] if shared else np.zeros(3, np.int64)
    return ScaleOffsets(untuned, values[shared:].reshape(steps, 3, buckets)), payload[end:]


def groups(n: int, group_size: int) -> list[tuple[int, int]]:
    """[a, b) ranges of ``group_size`` patches (the last one shorter)."""
    return [(a, min(n, a + group_size)) for a in range(0, n, group_size)]


def stream_ranges(n: int, streams: int, group_size: int) -> list[tuple[int, int]]:
    """Split ``n`` patches into ``streams`` contiguous ranges of whole groups."""
    gs = groups(n, group_size)
    streams = max(1, min(streams, len(gs)))
    per = -(-len(gs) // streams)
    return [(gs[a][0], gs[min(len(gs), a + per) - 1][1]) for a in range(0, len(gs), per)]


def auto_streams(n_dims: int) -> int:
    """Independent ANS streams for ``n_dims`` coded sub-pixels: one per STREAM_SUBPIXELS (a 4167x2880
    photo gets 4), at most 64. More streams decode on more threads, but each costs its lanes'
    start-up bits, so more streams mean narrower lanes, which decode slower
    (:func:`shvc_gui.core.entropy.rans.lanes_for`)."""
    return max(1, min(64, -(-n_dims // STREAM_SUBPIXELS)))


def pop_bound(hp, n: int, variant: str) -> int:
    """Upper bound on the seed words every pop of ``n`` patches of a model with ``hp`` could consume."""
    if variant == "det":
        return 0
    per_patch = sum(hp.z_channels * (hp.patch // hp.k ** i) ** 2 for i in range(1, hp.latent_layers + 1))
    return (per_patch * n * MAX_POP_BITS) // 32 + 64


def seed_words(count: int) -> np.ndarray:
    """The seed under a stream: fixed pseudo-random words (the decoder rebuilds them to check the end)."""
    return np.random.default_rng(0x5EC0).integers(1, 2 ** 32, size=count, dtype=np.uint32)


def pack(streams: list[tuple[int, np.ndarray]], lanes: int, version: int) -> bytes:
    """The payload of ``streams`` [(cut seed words, stream words)]."""
    head = [struct.pack("<I", len(streams))] + ([struct.pack("<I", lanes)] if version >= 2 else [])
    head += [struct.pack("<II", prefix, len(words)) for prefix, words in streams]
    return b"".join(head) + b"".join(words.astype("<u4").tobytes() for _, words in streams)


def stream_count(payload: bytes) -> int:
    if len(payload) < 4:
        raise FormatError("The compressed stream is truncated.")
    return struct.unpack_from("<I", payload)[0]


def unpack(payload: bytes, n_ranges: int, version: int) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """(lanes, [(prefix, words)] per stream) from a payload, every length checked."""
    if version not in VERSIONS:
        raise FormatError(f"The file is corrupt (no coder for format version {version}).")
    if len(payload) < 4 or len(payload) % 4:
        raise FormatError("The compressed stream is truncated.")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    count, pos, lanes = int(words[0]), 1, 0
    if version >= 2:
        if len(words) < 2:
            raise FormatError("The compressed stream is truncated.")
        lanes, pos = int(words[1]), 2
    if count != n_ranges or len(words) < pos + 2 * count:
        raise FormatError("The compressed stream is corrupt (bad stream table).")
    table = words[pos:pos + 2 * count].reshape(count, 2).astype(np.int64)
    body = words[pos + 2 * count:]
    if int(table[:, 1].sum()) != len(body):
        raise FormatError("The compressed stream is truncated or corrupt (stream lengths do not add up).")
    ends = np.cumsum(table[:, 1])
    return lanes, [(int(prefix), body[end - length:end]) for (prefix, length), end in zip(table, ends)]
