"""Pixel modes: the one home of what each pixel format is (channels, sample type, how it is coded).

Pillow's mode names, plus ";16" names for 16-bit colour, which Pillow cannot hold. Every other
module (the container, image I/O, the codec, the GUI) asks here; nothing keeps a default of its own,
so an unknown mode is an error rather than a guess of three channels.

No numpy, Pillow or torch here (the container imports it and ``shvc info`` stays cheap): sample
types are numpy type names, which :func:`shvc_gui.core.image_io.sample_dtype` turns into dtypes.
"""

from __future__ import annotations

# How the pixels are coded (container.Header.method).
METHOD_MODEL = "model"             # 8-bit RGB through the learned model; no fallback stream
METHOD_MIXED = "mixed"             # RGB planes through the model, the alpha plane in the fallback stream
METHOD_FALLBACK = "fallback"       # the whole image in the fallback stream (embedded lossless codec)
METHODS = (METHOD_MODEL, METHOD_MIXED, METHOD_FALLBACK)
MODEL_METHODS = (METHOD_MODEL, METHOD_MIXED)
MODEL_CHANNELS = 3                 # the model codes R, G and B; its bits maps sum these per pixel

# Pixel formats a file may declare, with their channel count.
MODE_CHANNELS = {
    "1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "I;16N": 1,
    "LA": 2, "La": 2, "PA": 2, "LA;16": 2,
    "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGB;16": 3,
    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "RGBA;16": 4,
}
MODES = tuple(MODE_CHANNELS)

I16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})   # 16-bit grey, Pillow's names
NON_PIL_MODES = frozenset({"LA;16", "RGB;16", "RGBA;16"})     # 16-bit colour: numpy only
MODE_ALIASES = {"RGB16": "RGB;16", "RGBA16": "RGBA;16", "LA16": "LA;16"}

_CODING = {"RGB": METHOD_MODEL, "RGBA": METHOD_MIXED}


def known(mode: str) -> bool:
    return mode in MODE_CHANNELS


def channels(mode: str) -> int:
    """Channels (samples per pixel) of ``mode``; KeyError for a mode that is not one of MODES."""
    return MODE_CHANNELS[mode]


def sample_type(mode: str) -> str:
    """numpy type name of one sample of ``mode`` (the type of ``LoadedImage.pixels``)."""
    if mode == "1":
        return "bool"
    if mode == "I":
        return "int32"
    if mode == "F":
        return "float32"
    if mode in I16_MODES or mode in NON_PIL_MODES:
        return "uint16"
    return "uint8"


def coding_method(mode: str) -> str:
    """How an image of ``mode`` is coded: METHOD_MODEL, METHOD_MIXED or METHOD_FALLBACK."""
    return _CODING.get(mode, METHOD_FALLBACK)


def bits_per_dimension(n_bytes: int, mode: str, width: int, height: int) -> float:
    """8 x bytes / (channels x width x height): a file's size against the samples it holds."""
    return 8 * n_bytes / (channels(mode) * width * height)
