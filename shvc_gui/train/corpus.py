"""Training corpus from Debian wallpaper packages: ``shvc train corpus [--out data/corpus]``.

1. ``apt-get download`` + ``dpkg -x`` every package of :data:`PACKAGES` into a cache folder
   (nothing is installed system-wide; a missing package is skipped with a log line).
2. Every JPEG/PNG/WebP inside becomes a *source*. The same picture shipped at several sizes is one
   source (its identity is the path with sizes such as ``1920x1080`` removed); the largest is kept.
3. Each source is area-downsampled (box filter, factor >= 2, so the shorter side ends <= 512 px):
   this washes out JPEG artefacts, as in camera photos that users compress.
4. Photographs are kept, flat art is dropped: the rule is PNG bits per pixel >= ``MIN_PNG_BPP``
   and >= ``MIN_COLOURS`` distinct colours (logged per source in ``selection.tsv``).
5. Train/validation split by source identity hash (``VAL_MODULUS``: 1 in 8 sources, fixed forever).
6. PNGs (deterministic encoding) and ``manifest.json`` with the sha256 of every output. Rebuilding
   gives identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

PACKAGES = ["mate-backgrounds", "ukui-wallpapers", "gnome-backgrounds", "plasma-workspace-wallpapers",
            "lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "sway-backgrounds",
            "desktop-base", "mypaint-data-extras"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_SHORT_SIDE = 512
MIN_FACTOR = 2
MIN_PNG_BPP = 4.0
MIN_COLOURS = 4000
VAL_MODULUS = 8
MIN_SIDE = 96                    # after downsampling; smaller sources are dropped
PNG_LEVEL = 6

Log = Callable[[str], None]


@dataclass
class Source:
    path: Path
    package: str
    identity: str


def identity_of(package: str, rel: str) -> str:
    """The picture a file shows, independent of the size it was shipped at."""
    p = rel.lower()
    p = re.sub(r"/contents/(images|images_dark|screenshot)[^/]*/[^/]*$", "", p)   # plasma layout
    p = re.sub(r"\d{3,5}x\d{3,5}", "", p)
    p = re.sub(r"\.(jpe?g|png|webp)$", "", p)
    p = re.sub(r"[-_./]+", "-", p).strip("-")
    return f"{package}:{p}"


def fetch_packages(cache: Path, packages: Iterable[str], log: Log) -> list[tuple[str, Path]]:
    debs, roots = cache / "debs", []
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            r = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
            if r.returncode or not found:
                log(f"skip {pkg}: apt-get download failed ({r.stderr.strip().splitlines()[-1:] or ''})")
                continue
        root = (cache / "extracted" / pkg).resolve()
        if not root.exists():
            tmp = root.with_name(root.name + ".partial")
            tmp.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg", "-x", str(found[-1].resolve()), str(tmp)], check=True)
            tmp.rename(root)
        roots.append((pkg, root))
    return roots


def find_sources(roots: list[tuple[str, Path]]) -> list[Source]:
    out = []
    for pkg, root in roots:
        for f in sorted(root.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.is_symlink():
                out.append(Source(f, pkg, identity_of(pkg, str(f.relative_to(root)))))
    return out


def downsample(img: Image.Image) -> Image.Image:
    short = min(img.size)
    factor = max(MIN_FACTOR, -(-short // MAX_SHORT_SIDE))
    return img.reduce(factor)                     # box filter: area average of factor x factor cells


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def is_photo(img: Image.Image, png: bytes) -> tuple[bool, str]:
    bpp = 8 * len(png) / (img.size[0] * img.size[1])
    colours = len(np.unique(np.asarray(img).reshape(-1, 3), axis=0))
    if min(img.size) < MIN_SIDE:
        return False, f"too small {img.size[0]}x{img.size[1]}"
    if bpp < MIN_PNG_BPP:
        return False, f"flat: {bpp:.2f} PNG bits/pixel < {MIN_PNG_BPP}"
    if colours < MIN_COLOURS:
        return False, f"few colours: {colours} < {MIN_COLOURS}"
    return True, f"photo: {bpp:.2f} PNG bits/pixel, {colours} colours"


def split_of(identity: str) -> str:
    return "val" if int(hashlib.sha256(identity.encode()).hexdigest()[:8], 16) % VAL_MODULUS == 0 else "train"


def build_from_sources(sources: list[Source], out: Path, log: Log = print) -> dict:
    """Dedupe, downsample, select, split and write the pack; returns the manifest."""
    best: dict[str, tuple[int, Source]] = {}
    seen: set[str] = set()
    rows = []
    for s in sources:
        digest = hashlib.sha256(s.path.read_bytes()).hexdigest()
        if digest in seen:
            rows.append((s, "drop", "duplicate file"))
            continue
        seen.add(digest)
        try:
            with Image.open(s.path) as im:
                area = im.size[0] * im.size[1]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is just skipped
            rows.append((s, "drop", f"unreadable: {exc}"))
            continue
        prev = best.get(s.identity)
        if prev is None or area > prev[0]:
            if prev:
                rows.append((prev[1], "drop", "smaller size of the same picture"))
            best[s.identity] = (area, s)
        else:
            rows.append((s, "drop", "smaller size of the same picture"))
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
        for old in (out / split).glob("*.png"):
            old.unlink()
    files = []
    for identity in sorted(best):
        s = best[identity][1]
        with Image.open(s.path) as im:
            img = downsample(im.convert("RGB"))
        png = png_bytes(img)
        keep, why = is_photo(img, png)
        rows.append((s, "keep" if keep else "drop", why))
        if not keep:
            continue
        split = split_of(identity)
        name = re.sub(r"[^a-z0-9]+", "-", identity.lower()).strip("-")[:80]
        name = f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:6]}.png"
        (out / split / name).write_bytes(png)
        files.append({"file": f"{split}/{name}", "split": split, "sha256": hashlib.sha256(png).hexdigest(),
                      "bytes": len(png), "width": img.size[0], "height": img.size[1],
                      "source": {"package": s.package, "path": str(s.path.name), "identity": identity}})
    with open(out / "selection.tsv", "w") as f:
        f.write("decision\treason\tpackage\tidentity\tfile\n")
        for s, decision, why in sorted(rows, key=lambda r: (r[0].identity, str(r[0].path))):
            f.write(f"{decision}\t{why}\t{s.package}\t{s.identity}\t{s.path.name}\n")
    manifest = {
        "rules": {"downsample": f"box filter, factor max({MIN_FACTOR}, ceil(short side / {MAX_SHORT_SIDE}))",
                  "photo": f"PNG bits/pixel >= {MIN_PNG_BPP} and >= {MIN_COLOURS} colours, short side >= {MIN_SIDE}",
                  "split": f"validation when int(sha256(identity)[:8], 16) % {VAL_MODULUS} == 0"},
        "files": files,
        "counts": {sp: sum(1 for f in files if f["split"] == sp) for sp in ("train", "val")},
        "bytes": sum(f["bytes"] for f in files),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    log(f"kept {len(files)} photos ({manifest['counts']}), {manifest['bytes'] / 2**20:.1f} MiB, "
        f"manifest {corpus_manifest_hash(out)[:12]}")
    return manifest


def build_from_images(paths: Iterable[Path], out: Path, package: str = "local", log: Log = print) -> dict:
    """The pipeline from a list of image files (used by the tests)."""
    paths = sorted(Path(p) for p in paths)
    sources = [Source(p, package, identity_of(package, p.name)) for p in paths]
    return build_from_sources(sources, Path(out), log)


def build_corpus(out: Path, cache: Path, packages: Iterable[str] = PACKAGES, log: Log = print) -> dict:
    roots = fetch_packages(Path(cache), packages, log)
    return build_from_sources(find_sources(roots), Path(out), log)


def corpus_manifest_hash(corpus: Path) -> str:
    return hashlib.sha256((Path(corpus) / "manifest.json").read_bytes()).hexdigest()


def load_corpus(corpus: Path, split: str) -> list[np.ndarray]:
    """Images of one split as HxWx3 uint8 arrays, in manifest order."""
    manifest = json.loads((Path(corpus) / "manifest.json").read_text())
    out = []
    for f in manifest["files"]:
        if f["split"] == split:
            with Image.open(Path(corpus) / f["file"]) as im:
                out.append(np.asarray(im.convert("RGB")))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shvc train corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/corpus")
    p.add_argument("--cache", default="data/cache")
    p.add_argument("--packages", nargs="*", default=PACKAGES)
    args = p.parse_args(argv)
    build_corpus(Path(args.out), Path(args.cache), args.packages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
