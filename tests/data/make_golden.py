"""Write the golden pair of the current format version, tests/data/golden-vN.png + golden-vN.shvc.

Run it only when the format version changes on purpose, and keep the pairs of older versions: the
golden test exists to catch changes that break files people already have.

    .venv/bin/python tests/data/make_golden.py
"""

from pathlib import Path

from PIL import Image, PngImagePlugin

from shvc_gui.core import codec, container
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.weights import load_integer_weights

HERE = Path(__file__).parent
# Versions 2 to 4: large enough for the rANS lanes (>= 32 x 4096 sub-pixels); from version 5 (>= 32 x 8192).
SIZE = {5: (384, 232), 6: (384, 232)}.get(container.VERSION, (288, 160))
# Versions 1 and 2: the latent-variable test model (variant arib, patches). Versions 3 to 5: the
# deterministic one (variant det, the whole image in one pyramid).
MODEL = {1: "trained-tiny.pt", 2: "trained-tiny.pt", 3: "trained-tiny-det.pt", 4: "trained-tiny-det.pt",
         5: "trained-tiny-det.pt", 6: "trained-tiny-det.pt"}
# From version 4: the photo reduced to this many colours, so that the file holds a colour list; version 6
# dithers them, so that the list carries the colours' counts.
COLOURS = {4: 48, 5: 48, 6: 48}
DITHER = {6: Image.Dither.FLOYDSTEINBERG}

if __name__ == "__main__":
    name = f"golden-v{container.VERSION}"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", "shvc golden image")
    img = Image.fromarray(synthetic_photo(SIZE[1], SIZE[0], seed=42))
    if container.VERSION in COLOURS:
        dither = DITHER.get(container.VERSION, Image.Dither.NONE)
        img = img.quantize(COLOURS[container.VERSION], dither=dither).convert("RGB")
    img.save(HERE / f"{name}.png", pnginfo=info, icc_profile=b"not-a-real-icc")
    model = load_integer_weights(HERE / MODEL[container.VERSION])
    codec.compress_file(HERE / f"{name}.png", HERE / f"{name}.shvc", model=model, force=True)
