"""The independent evaluation set: photographs of Debian packages that are never trained or tuned on.

    .venv/bin/python benchmarks/independent_set.py --out DIR [--cache DIR] [--min-pixels N]
    .venv/bin/shvc bench DIR --json out.json

The packages ``opencv-doc`` and ``libjxl-testdata`` are reserved for independent evaluation: the
training corpus builder (``shvc train corpus``, :mod:`shvc_gui.train.corpus`) refuses them and drops
their sample folders, so figures on this set say whether a codec or model change generalises beyond
the corpus's validation split. Use the set for evaluation only, never for training or tuning.

Building: both packages are fetched with the corpus builder's :func:`~shvc_gui.train.corpus.fetch_package`
(``apt-get download`` + ``dpkg -x`` into ``--cache``, default ``data/eval-cache``, git-ignored, apart
from the training cache; nothing is installed), then every PNG/JPEG/PPM/PNM file is opened with
Pillow and kept when it is

* a single frame whose mode as opened is ``RGB`` (palette, grey, RGBA, CMYK, ... are skipped, not
  converted) with 8-bit samples (16-bit PNGs and PPMs with maxval != 255, which Pillow also opens
  as ``RGB``, are skipped);
* at least ``--min-pixels`` pixels (default 200,000);
* not a pixel-for-pixel copy of a file kept before it (packages and paths in sorted order), e.g.
  ``flower.png`` / ``flower.pnm``; different pictures of one scene (stereo pairs) all stay;
* of libjxl's ``flower_small.rgb.depthN.ppm`` series, only depths 5 and 8 (depth 5 is a
  32-level picture, Pillow scales its samples to 0..255);
* not one of opencv-doc's manual figures (``opencv4/html``: IDE screenshots, diagrams, processed
  results) or libjxl's lossy re-encodings of its flower photograph (``flower.png.im_*``).

Each is written as a deterministic PNG (fixed zlib level, no metadata, no ICC profile, EXIF
orientation not applied) named ``PACKAGE__path__inside__package.ext.png`` (the package's
``usr/share/[doc/]PACKAGE/`` prefix left out), and ``DIR/manifest.json`` lists every file (source
package, .deb, source path and format, size, sha256 of the PNG and of its pixels) with the count of
files dropped for each reason. Building again gives the same bytes; PNGs of an earlier manifest that
are no longer selected are removed (nothing else in DIR is touched). Then

    .venv/bin/shvc bench DIR --json out.json

measures every codec on the set (``manifest.json`` is not an image and is not read by the bench).

Measured on bookworm (opencv-doc 4.6.0+dfsg-12, libjxl-testdata 0.0~git20230110.d6168ff-1): 51
images, 26.8 MP (opencv-doc 41: examples/data and examples/text, most of them decoded JPEGs;
libjxl-testdata 10: the flower photograph and its crops, three 500px photographs, a colour-bar
chart); 2,470 files looked at. ``manifest.json`` records each file's source path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from shvc_gui.train.corpus import FetchError, fetch_package, find_sources, png_bytes

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("opencv-doc", "libjxl-testdata")
SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pnm"}
FLOWER_DEPTHS = re.compile(r"(^|/)flower_small\.rgb\.depth(\d+)\.ppm$")
FLOWER_DEPTHS_KEPT = {5, 8}
# Not photographs of their own: opencv-doc's manual figures (IDE screenshots, diagrams, processed
# results) and libjxl's lossy re-encodings of its flower photograph.
NOT_PHOTOS = re.compile(r"(^|/)opencv4/html/|(^|/)flower\.png\.im_")
DEFAULT_MIN_PIXELS = 200_000
SET_VERSION = 1


def sample_bits(im: Image.Image) -> int:
    """Bits per sample of an opened ``RGB`` image as stored in its file: Pillow opens 16-bit RGB PNGs
    (raw mode ``RGB;16B``) and PPMs of any maxval as ``RGB``."""
    args = im.tile[0].args if im.tile else None
    rawmode, maxval = (args[0], args[1]) if isinstance(args, tuple) and len(args) > 1 else (args, 255)
    if isinstance(rawmode, str) and ";16" in rawmode:
        return 16
    if im.format == "PPM" and isinstance(maxval, int):
        return max(1, int(maxval).bit_length())
    return 8


def flat_name(package: str, rel: str) -> str:
    rel = re.sub(rf"^usr/share/(doc/)?{re.escape(package)}/", "", rel)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{package}/{rel}".replace("/", "__")) + ".png"


def select(sources, min_pixels: int, log=print):
    """(kept [(source, RGB array, format)], dropped reasons Counter)."""
    kept, dropped, seen = [], Counter(), {}
    for s in sources:
        if NOT_PHOTOS.search(s.rel):
            dropped["manual figure or lossy re-encoding"] += 1
            continue
        m = FLOWER_DEPTHS.search(s.rel)
        if m and int(m.group(2)) not in FLOWER_DEPTHS_KEPT:
            dropped["flower_small depth series (only depths 5 and 8 kept)"] += 1
            continue
        try:
            with Image.open(s.path) as im:
                if im.mode != "RGB":
                    dropped[f"mode {im.mode}"] += 1
                    continue
                if getattr(im, "n_frames", 1) != 1:
                    dropped["several frames"] += 1
                    continue
                if im.size[0] * im.size[1] < min_pixels:
                    dropped[f"under {min_pixels} pixels"] += 1
                    continue
                bits = sample_bits(im)
                if bits != 8 and not m:
                    dropped[f"{bits}-bit samples"] += 1
                    continue
                fmt = im.format
                a = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except Exception as exc:  # noqa: BLE001 - an unreadable file is just left out
            dropped[f"unreadable ({type(exc).__name__})"] += 1
            continue
        key = hashlib.sha256(f"{a.shape}".encode() + a.tobytes()).hexdigest()
        if key in seen:
            log(f"duplicate pixels: {s.package}:{s.rel} = {seen[key]}")
            dropped["same pixels as a file kept before"] += 1
            continue
        seen[key] = f"{s.package}:{s.rel}"
        kept.append((s, a, fmt))
    return kept, dropped


def build(out: Path, cache: Path, min_pixels: int, log=print) -> dict:
    roots = []
    apt_state: dict = {}
    for pkg in PACKAGES:
        try:
            root, deb = fetch_package(cache, pkg, log, apt_state)
        except FetchError as exc:
            raise FetchError(f"cannot fetch {pkg}: {' '.join(str(exc).split())}") from None
        roots.append((pkg, root, deb))
    sources = find_sources([(p, r) for p, r, _ in roots], SUFFIXES)
    kept, dropped = select(sources, min_pixels, log)
    out.mkdir(parents=True, exist_ok=True)
    old = out / "manifest.json"
    old_files = set()
    if old.exists():
        try:
            old_files = {f["file"] for f in json.loads(old.read_text()).get("files", [])}
        except (ValueError, AttributeError, TypeError, KeyError):
            log(f"{old}: unreadable, left as it is apart from being overwritten")
    files, names, debs = [], set(), {p: d for p, _, d in roots}
    for s, a, fmt in kept:
        name = flat_name(s.package, s.rel)
        if name in names:       # cannot happen for distinct paths unless they differ only in odd characters
            name = name[:-4] + "-" + hashlib.sha256(s.rel.encode()).hexdigest()[:8] + ".png"
        names.add(name)
        png = png_bytes(Image.fromarray(a, "RGB"))
        (out / name).write_bytes(png)
        files.append({
            "file": name, "package": s.package, "deb": debs[s.package],
            "source": s.rel, "source_format": fmt, "width": a.shape[1], "height": a.shape[0],
            "pixels": a.shape[0] * a.shape[1], "bytes": len(png),
            "sha256": hashlib.sha256(png).hexdigest(),
            "pixels_sha256": hashlib.sha256(a.tobytes()).hexdigest(),
        })
    for stale in sorted(old_files - names):
        p = out / stale
        if p.parent == out and p.suffix == ".png" and p.exists():
            p.unlink()
            log(f"removed {stale}: no longer selected")
    manifest = {
        "set_version": SET_VERSION,
        "purpose": "independent evaluation only: never train or tune on these images",
        "packages": {p: d for p, _, d in roots},
        "rules": {"suffixes": sorted(SUFFIXES), "mode": "RGB as opened by Pillow, 8-bit samples, one frame",
                  "min_pixels": min_pixels, "dedupe": "identical pixel arrays (first in package/path order kept)",
                  "flower_small_rgb_depths_kept": sorted(FLOWER_DEPTHS_KEPT)},
        "counts": {"candidates": len(sources), "kept": len(files),
                   **{p: sum(f["package"] == p for f in files) for p in PACKAGES}},
        "dropped": dict(sorted(dropped.items())),
        "pixels": sum(f["pixels"] for f in files),
        "bytes": sum(f["bytes"] for f in files),
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the PNGs and manifest.json")
    p.add_argument("--cache", type=Path, default=REPO / "data" / "eval-cache",
                   help="downloaded and unpacked .debs (default: data/eval-cache of the repository)")
    p.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS,
                   help=f"keep images of at least this many pixels (default {DEFAULT_MIN_PIXELS})")
    args = p.parse_args(argv)
    log = lambda line: print(line, file=sys.stderr)     # noqa: E731 - stdout holds only the summary
    try:
        m = build(args.out, args.cache, args.min_pixels, log)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    c = m["counts"]
    print(f"independent set: {c['kept']} images, {m['pixels'] / 1e6:.2f} MP, {m['bytes'] / 2 ** 20:.1f} MiB "
          f"({', '.join(f'{p} {c[p]}' for p in PACKAGES)}; {c['candidates']} files looked at) "
          f"-> {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
