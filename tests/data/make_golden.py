"""Rebuild the golden pair tests/data/golden.png + golden.shvc (only when the format changes on purpose:
the golden test exists to catch changes that break files people already have).

    .venv/bin/python tests/data/make_golden.py
"""

from pathlib import Path

from PIL import Image, PngImagePlugin

from shvc_gui.core import codec
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.weights import load_integer_weights

HERE = Path(__file__).parent

if __name__ == "__main__":
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", "shvc golden image")
    Image.fromarray(synthetic_photo(37, 70, seed=42)).save(HERE / "golden.png", pnginfo=info, icc_profile=b"not-a-real-icc")
    model = load_integer_weights(HERE / "trained-tiny.pt")
    codec.compress_file(HERE / "golden.png", HERE / "golden.shvc", model=model, force=True)
