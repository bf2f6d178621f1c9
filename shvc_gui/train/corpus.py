"""Training corpus from Debian wallpaper packages: ``shvc train corpus [--out data/corpus] [--cache data/cache]``.

The pipeline (every parameter is a field of :class:`Rules` and is written into ``manifest.json``):

1. **Fetch.** ``apt-get download`` + ``dpkg -x`` every package of :data:`PACKAGES` into the cache
   (``CACHE/debs``, ``CACHE/extracted``); nothing is installed system-wide. A name ending in ``*`` is
   expanded with ``apt-cache pkgnames``. ``apt-get update`` runs (once) only when ``apt-cache policy``
   shows no candidate for a package; a package that still has none is skipped with a log line.
2. **Sources.** Every JPEG/PNG/WebP in a folder named ``background(s)``, ``wallpaper(s)`` or
   ``collection`` (not screenshots or previews: icons, boot and login themes are UI assets) is a
   candidate; SVG (vector art) is dropped.
3. **Dedupe** (one output per picture): identical files (sha256) are one; files whose normalised
   path is the same once sizes such as ``1920x1080`` are removed (plasma's ``contents/images*/``
   layout, ``Elephants_1920x1080.jpg``) are one picture; so are files whose small perceptual hash
   (:func:`perceptual_hash`: 256-bit difference hash of the centre square) is within
   ``phash_max_distance`` bits (the same wallpaper shipped by two packages, or at two sizes under
   different names). Each group keeps its largest file; its identity is its smallest member identity.
4. **Select** photographs, drop flat art, on an *analysis image* (box-reduced so its short side is
   about ``analysis_short_side``, whatever the output size): keep when its PNG bits/pixel
   >= ``min_png_bpp``, distinct colours >= ``min_colours`` and the share of smooth pixels (grey
   ``|dx| + |dy| <= 2``) <= ``max_smooth_share``; transparent pictures are dropped. Every file's
   decision and the measured values go to ``selection.tsv``. (Measured on the bookworm packages:
   this drops every flat/gradient wallpaper; what it gets wrong is grainy or textured digital art,
   which passes, and bokeh macro photographs and grey photographs, which do not.)
5. **Downsample** by an integer factor ``max(2, ceil(short side / max_short_side))`` with a box
   filter (``Image.reduce``: the mean of factor x factor cells), which washes out JPEG artefacts and
   demosaicing, then centre-crop the long side to ``max_long_side``; 8-bit RGB (16-bit scaled,
   EXIF orientation applied, metadata and ICC profiles not copied).
6. **Split** by picture: ``u = int(sha256(identity)[:8], 16) / 2**32``; validation when
   ``u < val_fraction``; if that gives fewer than ``min_val_share`` of the kept pictures, the
   train pictures with the smallest ``u`` move to validation until it does. Every size of one
   picture is one group, so it never appears in both splits.
7. **Native crops** (``native_crops`` > 0, off by default): besides its downsampled picture, every
   kept JPEG/WebP picture gives that many crops of its decoded pixels at native resolution
   (:func:`native_crops`), so the model also sees what decoded JPEGs look like (8x8 blocks, smooth
   upsampled chroma). A train picture's crops go to ``train/``; a validation picture's to
   ``val-native/``, a third split for evaluation, so ``val/`` stays the same pictures either way.
8. **Write** ``OUT/{train,val,val-native}/*.png`` (fixed zlib level, no timestamps or metadata chunks),
   ``OUT/manifest.json`` (sha256 of every file and of its pixels, source package + path, sizes,
   the rules) and ``OUT/manifest.sha256``. Building twice from the same inputs gives identical bytes.

``load_corpus(dir, split)`` gives the images to the training loop; ``corpus_manifest_hash(dir)``
names the corpus in the weights manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps

# Debian packages with photographs (checked in bookworm). Names ending in '*' are prefixes expanded
# with `apt-cache pkgnames`. Looked at and left out (no photographs, or gone): xfdesktop4-data,
# lxde-common, debian-edu-artwork-*, kdegames-mahjongg-data-kf5, xplanet-images, fvwm-crystal,
# cinnamon-desktop-data (vector/gradient/rendered art or maps); gimp-data, krita-data, kodi-data,
# kphotoalbum, kstars-data, hugin-data, fotoxx-common, gthumb-data, inkscape (icons, UI screenshots,
# small help pictures); supertuxkart-data, extremetuxracer-data, colobot-common-textures,
# scorched3d-data, neverball-data (game textures: tiled, painted or rendered); gcompris-qt-data,
# trigger-rally-data, openarena-081-textures, nexuiz-textures, ufoai-textures (pictures packed in
# archives); budgie-*, deepin-*, xfce4-artwork (not in bookworm).
PACKAGES = (
    "mate-backgrounds",
    "ukui-wallpapers",
    "gnome-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers*",
    "sway-backgrounds",
    "desktop-base",
    "lxqt-themes",             # lxqt/wallpapers: a dozen photographs (flowers, clouds, fog, ...)
    "palapeli-data",           # the jigsaw puzzles' photographs (bridge, bee, chameleon, ...)
    "mypaint-data-extras",     # high-resolution scans of paper, canvas and cork
    "tuxpaint-data",           # templates/: 19 photographs (bark, cliff, jellyfish, sheep, waves, ...)
    "puzzle-jigsaw",           # samples/: two photographs (a cat, a lake)
    "digikam-data",            # about/images/body-background.jpg: a 12-MP landscape photograph
    "sddm-theme-maldives",     # background.jpg: a beach photograph
    "stellarium-data",         # nebulae/default/: astrophotographs (deep-sky objects), capped below
)
# Where the pictures of a package lie when they are not in background/wallpaper folders
# (path inside the package, a regular expression); every other package uses PICTURE_DIRS.
PICTURE_PATHS = {
    "tuxpaint-data": re.compile(r"^usr/share/tuxpaint/templates/[^/]+$"),
    "puzzle-jigsaw": re.compile(r"^usr/share/puzzle-jigsaw/samples/[^/]+$"),
    "digikam-data": re.compile(r"^usr/share/digikam/about/images/body-background\.jpg$"),
    "sddm-theme-maldives": re.compile(r"^usr/share/sddm/themes/maldives/background\.jpg$"),
    "stellarium-data": re.compile(r"^usr/share/stellarium/nebulae/default/[^/]+\.(png|jpe?g)$"),
}
# Digital art (renders, illustrations) that passes the automatic rule because it is dithered or
# textured, listed after looking at every kept picture of the bookworm packages: "package:path".
DIGITAL_ART = re.compile(
    r"^(gnome-backgrounds:"                                   # all of GNOME 43's are renders
    r"|mate-backgrounds:usr/share/backgrounds/mate/(abstract|desktop)/"
    r"|ukui-wallpapers:usr/share/backgrounds/(2004default|calla|city|desert|firstgeneration|fluent-color"
    r"|focal-ubuntukylin|goldfish|rhythm|rollpaper|string|the-mouse)\."
    r"|plasma-workspace-wallpapers:usr/share/wallpapers/(Altai|Canopee|Cascade|Cluster|Elarun|Flow"
    r"|FlyingKonqui|Honeywave|IceCold|Kay|Kokkini|MilkyWay|Opal|PastelHills|Patak|SafeLanding|Shell"
    r"|Volna)/"
    r"|lomiri-wallpapers[^:]*:.*(umang_by_Abhishek_Mudgal|Fossa_by_Jasper_Roks|Infinite-Sea_by_Aury88)"
    r"|lxqt-themes:.*/waves-logo)")
# At most this many kept pictures of a package (smallest u("cap " + identity): a hash independent of
# the split's, so the split stays ~11 % within the package too), so that
# one kind of picture (astrophotographs: mostly black sky) does not dominate the corpus.
PACKAGE_CAPS = {"stellarium-data": 48}
# Reserved for independent evaluation: never trained or tuned on. The builder refuses these
# packages and drops any file whose path looks like one of these sample/test image collections.
EXCLUDED_PACKAGES = re.compile(r"^(opencv-doc|libjxl-testdata|python3?-skimage.*|python-skimage.*|"
                               r"python3?-sklearn.*|python-sklearn.*|scikit-(image|learn).*)$")
EXCLUDED_PATHS = re.compile(r"(^|/)(skimage/data|sklearn/datasets/images|opencv[^/]*/samples|"
                            r"doc/opencv[^/]*|libjxl[^/]*/testdata|jxl/testdata)(/|$)", re.IGNORECASE)
# Only pictures in these folders count (icons, boot/login themes, previews are UI assets, not pictures).
PICTURE_DIRS = re.compile(r"(^|/)(backgrounds?|wallpapers?|collection)/")
NOT_PICTURES = re.compile(r"(screenshot|preview)[^/]*$", re.IGNORECASE)
RASTER_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
VECTOR_SUFFIXES = {".svg", ".svgz"}
PNG_LEVEL = 9                  # the output files
ANALYSIS_PNG_LEVEL = 6         # the selection rule's bits/pixel
CORPUS_VERSION = 2
SPLITS = ("train", "val", "val-native")   # val-native: only with native crops (of validation pictures)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Rules:
    """Every parameter of the pipeline; written into the manifest."""
    min_factor_lossy: int = 2          # box-filter factor, at least, for JPEG/WebP sources (and a PNG
    #                                    that shows a JPEG 8x8 grid): washes out JPEG artefacts
    min_factor_lossless: int = 1       # for PNG sources without a JPEG grid: native pixels kept
    max_blockiness: float = 1.12       # a PNG whose 8x8 grid strength exceeds this was a JPEG
    max_short_side: int = 1024         # factor = max(min factor, ceil(short / max_short_side))
    max_long_side: int = 1536          # then the long side is centre-cropped to this
    min_side: int = 128                # short side of the output, at least (training crops are 64x64)
    analysis_short_side: int = 384     # the selection looks at the picture box-reduced to about this
    min_colours: int = 2000            # distinct RGB colours of the analysis image, at least (colour)
    min_grey_levels: int = 96          # distinct levels of a grey analysis image, at least
    max_exact_share: float = 0.6       # share of pixels exactly on the planar prediction, at most
    max_smooth_share: float = 0.98     # share of pixels with grey |dx| + |dy| <= 2, at most (gradients)
    min_png_bpp: float = 0.5           # PNG bits per pixel of the analysis image, at least
    phash_max_distance: int = 24       # of 256 bits: the same picture
    val_fraction: float = 0.11         # validation when u < this
    min_val_share: float = 0.10        # and at least this share of the kept pictures
    max_total_mib: float = 450.0       # size budget of the pack (a warning when exceeded)
    native_crops: int = 0              # crops per kept lossy picture at its decoded native resolution
    native_crop_side: int = 512        # their side (at most; smaller pictures give smaller crops)

    def describe(self) -> dict:
        params = asdict(self)
        extra = {}
        if self.native_crops:
            extra["native_crops"] = (
                f"{self.native_crops} crop(s) of up to {self.native_crop_side}x{self.native_crop_side} per kept "
                "JPEG/WebP picture, decoded at its native resolution (8x8 blocks and all), top-left corner on "
                "the 16-pixel grid at u('native i ' + identity); the train pictures' crops go to train/, the "
                "validation pictures' to val-native/")
        else:                                   # corpora built without them keep their manifest bytes
            del params["native_crops"], params["native_crop_side"]
        return {**extra,
            "downsample": (f"box filter (PIL Image.reduce), integer factor max(m, ceil(short side / "
                           f"{self.max_short_side})) with m = {self.min_factor_lossy} for JPEG/WebP sources "
                           f"and PNG sources whose 8x8 grid strength (blockiness) > {self.max_blockiness}, "
                           f"m = {self.min_factor_lossless} for other lossless sources; then centre crop of the "
                           f"long side to <= {self.max_long_side}; 8-bit RGB"),
            "selection": ("only files in folders named background(s)/wallpaper(s)/collection, or the "
                          "package's own picture path, not screenshots or previews; SVG dropped; packages "
                          "and sample collections reserved for evaluation refused; digital art listed by path "
                          "(DIGITAL_ART) dropped; on the analysis image "
                          f"(box-reduced by max(2, ceil(short side / {self.analysis_short_side}))) keep unless "
                          f"distinct colours < {self.min_colours} (grey pictures: levels < "
                          f"{self.min_grey_levels}), share of pixels exactly on the planar prediction "
                          f"> {self.max_exact_share} (flat areas, clean gradients), share of smooth pixels "
                          f"(grey |dx| + |dy| <= 2) > {self.max_smooth_share} (dithered gradients) or PNG(level "
                          f"{ANALYSIS_PNG_LEVEL}) bits/pixel < {self.min_png_bpp}; smooth and low-entropy "
                          f"photographs are kept; output short side >= {self.min_side}; no transparency"),
            "dedupe": ("identical sha256; same path once WxH sizes and plasma contents/images*/ are "
                       f"removed; 256-bit centre-square difference hash within {self.phash_max_distance} "
                       "bits (hashes with < 32 or > 224 ones, i.e. flat pictures, are not compared); the "
                       "largest file of a group is kept; identity = smallest member identity"),
            "package_caps": (f"at most {dict(sorted(PACKAGE_CAPS.items()))} kept pictures of these "
                             "packages: those with the smallest u('cap ' + identity)"),
            "split": (f"u = int(sha256(identity)[:8], 16) / 2**32; val when u < {self.val_fraction}; then "
                      f"the smallest-u train pictures move to val until val >= {self.min_val_share} of kept"),
            "params": params,
        }


@dataclass
class Source:
    path: Path            # on disk
    package: str
    rel: str              # path inside the package (or relative to the folder of local images)
    identity: str = ""
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    phash: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.identity:
            self.identity = identity_of(self.package, self.rel)


def identity_of(package: str, rel: str) -> str:
    """The picture a file shows, independent of the size it was shipped at."""
    p = rel.lower()
    p = re.sub(r"/contents/(images[^/]*/[^/]*|screenshot[^/]*)$", "", p)   # plasma layout
    p = re.sub(r"\d{3,5}x\d{3,5}", "", p)
    p = re.sub(r"\.(jpe?g|png|webp|svgz?)$", "", p)
    p = re.sub(r"[-_./ ]+", "-", p).strip("-")
    return f"{package}:{p}"


# --- fetching -----------------------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _has_candidate(pkg: str) -> bool:
    try:
        out = _run(["apt-cache", "policy", pkg]).stdout
    except FileNotFoundError:
        return False
    m = re.search(r"Candidate:\s*(\S+)", out)
    return bool(m) and m.group(1) != "(none)"


def expand_packages(packages: Iterable[str], debs: Path) -> list[str]:
    out: list[str] = []
    for pkg in packages:
        if not pkg.endswith("*"):
            out.append(pkg)
            continue
        prefix = pkg[:-1]
        try:
            names = _run(["apt-cache", "pkgnames", prefix]).stdout.split()
        except FileNotFoundError:
            names = []
        names += [d.name.split("_")[0] for d in debs.glob(f"{prefix}*_*.deb")]
        out += sorted({n for n in names if n.startswith(prefix)}) or [prefix]
    return list(dict.fromkeys(out))


class FetchError(RuntimeError):
    """A package that could not be fetched: no apt candidate, or ``apt-get download`` failed."""


def fetch_package(cache: Path, pkg: str, log: Log = print, apt_state: dict | None = None) -> tuple[Path, str]:
    """Download (``apt-get download`` into ``CACHE/debs``, unless a .deb is there already) and unpack
    (``dpkg -x`` into ``CACHE/extracted/PKG``) one package; returns (root folder, .deb file name) or
    raises :class:`FetchError`. No check of what the package is for: the training corpus goes through
    :func:`fetch_packages`, which refuses the packages reserved for evaluation. ``apt_state``, shared
    by the calls of one run, makes ``apt-get update`` run at most once."""
    apt_state = {} if apt_state is None else apt_state
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        if not _has_candidate(pkg) and not apt_state.get("updated"):
            log(f"apt-cache policy shows no candidate for {pkg}: running apt-get update")
            r = _run(["apt-get", "update", "-qq"])
            apt_state["updated"] = True
            if r.returncode:
                log(f"apt-get update failed: {r.stderr.strip()[-300:]}")
        if not _has_candidate(pkg):
            raise FetchError("no apt candidate")
        log(f"apt-get download {pkg}")
        r = _run(["apt-get", "download", pkg], cwd=debs)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if r.returncode or not found:
            raise FetchError(f"apt-get download failed ({r.stderr.strip()[-300:]})")
    deb = found[-1]
    root = (cache / "extracted" / pkg).resolve()
    stamp = root / ".deb"
    if not (stamp.exists() and stamp.read_text() == deb.name):
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(["dpkg", "-x", str(deb.resolve()), str(tmp)], check=True)
        (tmp / ".deb").write_text(deb.name)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root, deb.name


def fetch_packages(cache: Path, packages: Iterable[str], log: Log = print) -> list[tuple[str, Path, str]]:
    """Download and unpack; returns (package, root folder, .deb file name) of each package found.
    Refuses the packages reserved for independent evaluation."""
    packages = list(packages)
    refuse_excluded(packages)
    apt_state: dict = {}
    found_roots = []
    for pkg in expand_packages(packages, cache / "debs"):
        if is_excluded(pkg):
            log(f"skip {pkg}: reserved for independent evaluation")
            continue
        try:
            root, deb = fetch_package(cache, pkg, log, apt_state)
        except FetchError as exc:
            log(f"skip {pkg}: {exc}")
            continue
        found_roots.append((pkg, root, deb))
    return found_roots


def find_sources(roots: Iterable[tuple[str, Path]], suffixes: Iterable[str] | None = None) -> list[Source]:
    """Image files (symlinks skipped: they point at files found anyway), in a fixed order.
    ``suffixes`` (lower case, with the dot): default the raster and vector suffixes of the corpus."""
    suffixes = RASTER_SUFFIXES | VECTOR_SUFFIXES if suffixes is None else set(suffixes)
    out = []
    for pkg, root in roots:
        for f in sorted(root.rglob("*")):
            suffix = f.suffix.lower()
            if suffix in suffixes and f.is_file() and not f.is_symlink():
                out.append(Source(f, pkg, f.relative_to(root).as_posix()))
    return out


# --- images -------------------------------------------------------------------------------------
def to_rgb(im: Image.Image) -> tuple[Image.Image, bool]:
    """8-bit RGB without metadata, and whether the source had any transparency."""
    im = ImageOps.exif_transpose(im)
    transparent = False
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.int64)
        im = Image.fromarray(np.clip((a + 128) // 257, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        transparent = int(np.asarray(im.getchannel("A")).min()) < 255
    rgb = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return Image.fromarray(rgb, "RGB"), transparent


def reduce_factor(size: tuple[int, int], rules: Rules, lossy: bool = True) -> int:
    m = rules.min_factor_lossy if lossy else rules.min_factor_lossless
    return max(m, math.ceil(min(size) / rules.max_short_side))


def downsample_size(size: tuple[int, int], rules: Rules, lossy: bool = True) -> tuple[int, int]:
    f = reduce_factor(size, rules, lossy)
    return min(-(-size[0] // f), rules.max_long_side), min(-(-size[1] // f), rules.max_long_side)


def downsample(img: Image.Image, rules: Rules, lossy: bool = True) -> Image.Image:
    """Box-filter reduce by an integer factor, then centre-crop the long side."""
    f = reduce_factor(img.size, rules, lossy)
    if f > 1:
        img = img.reduce(f)
    w, h = img.size
    cw, ch = min(w, rules.max_long_side), min(h, rules.max_long_side)
    if (cw, ch) != (w, h):
        x, y = (w - cw) // 2, (h - ch) // 2
        img = img.crop((x, y, x + cw, y + ch))
    return img


NATIVE_GRID = 16                   # native crops start on this grid (the JPEG blocks and 4:2:0 macroblocks)


def native_crops(img: Image.Image, identity: str, rules: Rules) -> list[tuple[tuple[int, int, int, int], Image.Image]]:
    """``rules.native_crops`` crops of a decoded picture at its native resolution, each
    ((left, top, right, bottom), crop): side ``rules.native_crop_side`` (or the picture's, when
    smaller), the corner on the :data:`NATIVE_GRID` grid at a fixed function of the identity."""
    w, h = img.size
    cw, ch = min(w, rules.native_crop_side), min(h, rules.native_crop_side)
    out = []
    for i in range(rules.native_crops):
        ux, uy = _u(f"native {i} x " + identity), _u(f"native {i} y " + identity)
        x = int(ux * (w - cw + 1)) // NATIVE_GRID * NATIVE_GRID
        y = int(uy * (h - ch + 1)) // NATIVE_GRID * NATIVE_GRID
        box = (x, y, x + cw, y + ch)
        out.append((box, img.crop(box)))
    return out


def is_lossy(img: Image.Image, fmt: str | None, rules: Rules = Rules()) -> tuple[bool, str]:
    """Whether the picture went through lossy coding at this size: (lossy, why)."""
    if fmt in ("JPEG", "WEBP", "MPO"):
        return True, fmt
    b = blockiness(img)
    return b > rules.max_blockiness, f"{fmt} blockiness {b:.3f}"


def png_bytes(img: Image.Image) -> bytes:
    """Deterministic PNG: fixed zlib level, no metadata chunks (no tIME, no text, no ICC)."""
    clean = Image.fromarray(np.asarray(img.convert("RGB")), "RGB")
    buf = io.BytesIO()
    clean.save(buf, format="PNG", compress_level=PNG_LEVEL, optimize=False)
    return buf.getvalue()


def perceptual_hash(img: Image.Image) -> np.ndarray:
    """256-bit difference hash of the centre square (grey, 17x16 box-filtered): bool[256]."""
    g = img.convert("L")
    w, h = g.size
    s = min(w, h)
    g = g.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    a = np.asarray(g.resize((17, 16), Image.Resampling.BOX), dtype=np.int16)
    return (a[:, 1:] > a[:, :-1]).reshape(-1)


def analysis_image(img: Image.Image, rules: Rules = Rules()) -> Image.Image:
    """The picture at a fixed scale for the selection rule (independent of the output size)."""
    return img.reduce(max(2, math.ceil(min(img.size) / rules.analysis_short_side)))


def image_stats(img: Image.Image) -> dict:
    """PNG bits/pixel, distinct colours, whether it is grey (R = G = B), share of smooth pixels
    (grey |dx| + |dy| <= 2) and share of *exact* pixels: grey value equal to the mean of its two
    left and two upper neighbours' linear prediction (``|g - (left + up - upleft)| == 0``), which
    flat areas and clean gradients of digital art have nearly everywhere and photographs (sensor
    noise, film grain, JPEG) do not."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=ANALYSIS_PNG_LEVEL)
    a = np.asarray(img, dtype=np.int32)
    flat = a.reshape(-1, 3)
    colours = len(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]))
    grey = bool((np.abs(a[..., 0] - a[..., 1]).max() <= 2) and (np.abs(a[..., 1] - a[..., 2]).max() <= 2))
    g = np.asarray(img.convert("L"), dtype=np.int16)
    grad = np.abs(np.diff(g, axis=1))[:-1] + np.abs(np.diff(g, axis=0))[:, :-1]
    smooth = float((grad <= 2).mean()) if grad.size else 1.0
    if min(a.shape[:2]) > 1:
        residual = a[1:, 1:] - a[1:, :-1] - a[:-1, 1:] + a[:-1, :-1]      # per channel
        exact = float((np.abs(residual).max(axis=-1) == 0).mean())
    else:
        exact = 1.0
    return {"bpp": 8 * len(buf.getvalue()) / (img.size[0] * img.size[1]), "colours": colours, "grey": grey,
            "smooth": smooth, "exact": exact}


def blockiness(img: Image.Image, block: int = 8, max_side: int = 2048) -> float:
    """JPEG 8x8 grid strength of a full-resolution picture: the mean grey step across the columns
    and rows at multiples of ``block`` divided by the mean step elsewhere (about 1.0 for a picture
    that never was a JPEG at this size, 1.1 to 2 for one that was). Measured on the centre
    ``max_side`` square at most, aligned to the grid of the full picture."""
    w, h = img.size
    x0 = max(0, (w - max_side) // 2) // block * block
    y0 = max(0, (h - max_side) // 2) // block * block
    g = np.asarray(img.crop((x0, y0, min(w, x0 + max_side), min(h, y0 + max_side))).convert("L"), np.float32)
    ratios = []
    for d in (np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0)).T):
        if d.shape[1] < 2 * block:
            continue
        at = (np.arange(d.shape[1]) % block) == block - 1
        rest = float(d[:, ~at].mean())
        ratios.append(float(d[:, at].mean()) / rest if rest > 0 else 1.0)
    return float(np.mean(ratios)) if ratios else 1.0


def is_photo(img: Image.Image, rules: Rules = Rules(), lossy: bool = True) -> tuple[bool, str]:
    """The selection rule on a full-size RGB picture: (keep, reason with the measured values)."""
    st = image_stats(analysis_image(img, rules))
    out = downsample_size(img.size, rules, lossy)
    stats = (f"{st['bpp']:.2f} bpp, {st['colours']} colours{' (grey)' if st['grey'] else ''}, "
             f"smooth {st['smooth']:.2f}, exact {st['exact']:.2f}")
    if min(out) < rules.min_side:
        return False, f"too small: output {out[0]}x{out[1]}"
    if st["grey"] and st["colours"] < rules.min_grey_levels:
        return False, f"few colours: < {rules.min_grey_levels} grey levels: {stats}"
    if not st["grey"] and st["colours"] < rules.min_colours:
        return False, f"few colours: < {rules.min_colours}: {stats}"
    if st["exact"] > rules.max_exact_share:
        return False, f"flat: exact > {rules.max_exact_share}: {stats}"
    if st["smooth"] > rules.max_smooth_share:
        return False, f"smooth: > {rules.max_smooth_share}: {stats}"
    if st["bpp"] < rules.min_png_bpp:
        return False, f"flat: bpp < {rules.min_png_bpp}: {stats}"
    return True, f"photo: {stats}"


def _u(identity: str) -> float:
    return int(hashlib.sha256(identity.encode()).hexdigest()[:8], 16) / 2 ** 32


def assign_splits(identities: Iterable[str], rules: Rules = Rules()) -> dict[str, str]:
    ids = sorted(set(identities), key=lambda i: (_u(i), i))
    split = {i: "val" if _u(i) < rules.val_fraction else "train" for i in ids}
    need = math.ceil(rules.min_val_share * len(ids)) - sum(v == "val" for v in split.values())
    for i in ids:                                   # smallest u first
        if need <= 0:
            break
        if split[i] == "train":
            split[i], need = "val", need - 1
    return split


# --- the pipeline -------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def is_excluded(package: str, rel: str = "") -> bool:
    """A package or file reserved for independent evaluation (never trained or tuned on)."""
    return bool(EXCLUDED_PACKAGES.match(package) or EXCLUDED_PATHS.search(rel))


def refuse_excluded(packages: Iterable[str]) -> None:
    bad = [p for p in packages if EXCLUDED_PACKAGES.match(p.rstrip("*"))]
    if bad:
        raise ValueError(f"reserved for independent evaluation, never used for training: {', '.join(bad)}")


def is_picture_path(package: str, rel: str) -> bool:
    """Whether a file of a package is one of its pictures (not an icon, theme asset or preview)."""
    if NOT_PICTURES.search(rel):
        return False
    pattern = PICTURE_PATHS.get(package)
    return bool(pattern.search(rel)) if pattern else bool(PICTURE_DIRS.search(rel))


def _slug(text: str, n: int = 60) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n].strip("-")


def build_from_sources(sources: list[Source], out: Path, rules: Rules = Rules(), log: Log = print,
                       packages: dict | None = None, picture_folders: bool = False) -> dict:
    """Dedupe, downsample, select, split and write the pack; returns the manifest."""
    t0 = time.time()
    out = Path(out)
    rows: list[tuple[Source, str, str]] = []          # (source, decision, reason)
    # 1. exact duplicates, vector art, unreadable files; sizes and perceptual hashes
    raster: list[Source] = []
    by_sha: dict[str, Source] = {}
    for s in sorted(sources, key=lambda s: (s.package, s.rel)):
        if is_excluded(s.package, s.rel):
            rows.append((s, "drop", "reserved for evaluation (never trained on)"))
            continue
        if s.path.suffix.lower() in VECTOR_SUFFIXES:
            rows.append((s, "drop", "vector art (SVG)"))
            continue
        if DIGITAL_ART.search(f"{s.package}:{s.rel}"):
            rows.append((s, "drop", "digital art (listed in DIGITAL_ART after looking at it)"))
            continue
        if picture_folders and not is_picture_path(s.package, s.rel):
            rows.append((s, "drop", "not in a wallpaper/background folder, or a preview"))
            continue
        s.sha256 = hashlib.sha256(s.path.read_bytes()).hexdigest()
        if s.sha256 in by_sha:
            first = by_sha[s.sha256]
            rows.append((s, "drop", f"identical to {first.package}:{first.rel}"))
            continue
        by_sha[s.sha256] = s
        try:
            with Image.open(s.path) as im:
                s.size = im.size
                if im.format == "JPEG":
                    im.draft("RGB", (max(64, im.size[0] // 8), max(64, im.size[1] // 8)))
                s.phash = perceptual_hash(to_rgb(im)[0])
        except Exception as exc:  # noqa: BLE001 - any unreadable file is just skipped
            rows.append((s, "drop", f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        raster.append(s)
    # 2. groups of the same picture: same identity, or perceptual hashes close
    uf = _UnionFind(len(raster))
    first_of: dict[str, int] = {}
    for i, s in enumerate(raster):
        j = first_of.setdefault(s.identity, i)
        uf.union(i, j)
    if raster:
        h = np.stack([s.phash for s in raster]).astype(np.uint8)
        dist = (h[:, None, :] != h[None, :, :]).sum(-1)
        ones = h.sum(1)
        informative = (ones >= 32) & (ones <= 224)
        close = (dist <= rules.phash_max_distance) & informative[:, None] & informative[None, :]
        for i, j in zip(*np.nonzero(np.triu(close, 1))):
            if raster[i].identity != raster[j].identity:
                log(f"near-duplicate ({dist[i, j]} bits): {raster[i].identity} ~ {raster[j].identity}")
            uf.union(int(i), int(j))
    groups: dict[int, list[Source]] = {}
    for i, s in enumerate(raster):
        groups.setdefault(uf.find(i), []).append(s)
    # 3. per group: the largest file, downsampled, selected
    kept: list[tuple[str, Source, Image.Image, bytes, str, bool]] = []
    for n, members in enumerate(groups.values()):
        if n % 50 == 0:
            log(f"selecting: {n} of {len(groups)} pictures, {len(kept)} kept, {time.time() - t0:.0f} s")
        identity = min(s.identity for s in members)
        best = max(members, key=lambda s: (s.size[0] * s.size[1], s.size, -len(s.rel), s.package, s.rel))
        for s in members:
            if s is not best:
                rows.append((s, "drop", f"same picture as {best.package}:{best.rel} (larger)"))
        try:
            with Image.open(best.path) as im:
                fmt = im.format
                rgb, transparent = to_rgb(im)
        except Exception as exc:  # noqa: BLE001
            rows.append((best, "drop", f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        if transparent:
            rows.append((best, "drop", "transparent"))
            continue
        lossy, coding = is_lossy(rgb, fmt, rules)
        keep, why = is_photo(rgb, rules, lossy)
        why = f"{why}, {coding}, factor {reduce_factor(rgb.size, rules, lossy)}"
        rows.append((best, "keep" if keep else "drop", why))
        if keep:
            img = downsample(rgb, rules, lossy)
            crops = native_crops(rgb, identity, rules) if lossy else []
            kept.append((identity, best, img, crops, why, lossy))
    # 4. package caps: the kept pictures with the smallest u
    for pkg, cap in sorted(PACKAGE_CAPS.items()):
        mine = sorted((k for k in kept if k[1].package == pkg), key=lambda k: (_u("cap " + k[0]), k[0]))
        for k in mine[cap:]:
            kept.remove(k)
            i = next(i for i, r in enumerate(rows) if r[0] is k[1])
            rows[i] = (k[1], "drop", f"package cap: {pkg} keeps {cap} pictures (smallest cap hash); {k[4]}")
    # 5. split and write
    splits = assign_splits([k[0] for k in kept], rules)
    for split in SPLITS:
        for old in (out / split).glob("*.png"):
            old.unlink()
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
    files = []

    def write(split: str, stem: str, img: Image.Image, entry: dict) -> None:
        """``img`` as ``split/stem.png``, listed with ``entry`` (what it is and where it came from)."""
        png = png_bytes(img)
        (out / split).mkdir(exist_ok=True)
        (out / split / f"{stem}.png").write_bytes(png)
        files.append({"file": f"{split}/{stem}.png", "split": split, "sha256": hashlib.sha256(png).hexdigest(),
                      "pixels_sha256": hashlib.sha256(np.asarray(img).tobytes()).hexdigest(),
                      "bytes": len(png), "width": img.size[0], "height": img.size[1], **entry})

    for identity, s, img, crops, why, lossy in sorted(kept, key=lambda k: k[0]):
        split = splits[identity]
        stem = f"{_slug(identity)}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
        origin = {"identity": identity, "lossy_source": lossy, "selection": why,
                  "source": {"package": s.package, "path": s.rel, "sha256": s.sha256,
                             "width": s.size[0], "height": s.size[1]}}
        write(split, stem, img, {**origin, "factor": reduce_factor(s.size, rules, lossy)})
        for i, (box, crop) in enumerate(crops):
            write("train" if split == "train" else "val-native", f"{stem}-native{i}", crop,
                  {**origin, "factor": 1, "native_crop": list(box)})
    rows.sort(key=lambda r: (r[0].package, r[0].rel))
    with open(out / "selection.tsv", "w", newline="\n") as f:
        f.write("decision\treason\tpackage\tpath\tidentity\n")
        for s, decision, why in rows:
            f.write(f"{decision}\t{why}\t{s.package}\t{s.rel}\t{s.identity}\n")
    total = sum(f["bytes"] for f in files)
    manifest = {
        "corpus_version": CORPUS_VERSION,
        "rules": rules.describe(),
        "packages": dict(sorted((packages or {}).items())),
        "counts": {"sources": len(rows), "kept": len(kept), "dropped": len(rows) - len(kept),
                   **{sp: sum(f["split"] == sp for f in files) for sp in SPLITS
                      if sp != "val-native" or rules.native_crops}},
        "bytes": total,
        "files": files,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text)
    (out / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest() + "  manifest.json\n")
    splits_text = ", ".join(f"{sp} {manifest['counts'][sp]}" for sp in SPLITS if sp in manifest["counts"])
    log(f"kept {len(kept)} of {len(rows)} files, wrote {len(files)} ({splits_text}), "
        f"{total / 2 ** 20:.2f} MiB, "
        f"manifest {corpus_manifest_hash(out)}, {time.time() - t0:.0f} s")
    if total > rules.max_total_mib * 2 ** 20:
        log(f"WARNING: the pack is {total / 2 ** 20:.1f} MiB, over the {rules.max_total_mib} MiB budget")
    return manifest


def build_from_images(paths: Iterable[Path], out_dir: Path, *, root: Path | None = None,
                      package: str = "local", rules: Rules = Rules(), log: Log = print) -> dict:
    """The pipeline from a list of image files; paths are recorded relative to ``root``
    (default: their common folder), so the manifest does not depend on where they lie."""
    paths = sorted(Path(p).resolve() for p in paths)
    if root is None:
        root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path(".")
    root = Path(root).resolve()
    sources = [Source(p, package, p.relative_to(root).as_posix()) for p in paths]
    return build_from_sources(sources, Path(out_dir), rules, log)


def build_corpus(out_dir: Path = Path("data/corpus"), cache_dir: Path = Path("data/cache"),
                 packages: Iterable[str] = PACKAGES, rules: Rules = Rules(), log: Log = print) -> dict:
    """Fetch the packages into ``cache_dir`` and build the corpus into ``out_dir``."""
    packages = list(packages)
    refuse_excluded(packages)
    roots = fetch_packages(Path(cache_dir), packages, log)
    if not roots:
        raise RuntimeError("no package could be fetched: is this a Debian/Ubuntu system with apt?")
    log("packages: " + ", ".join(f"{p} ({deb})" for p, _, deb in roots))
    sources = find_sources((p, r) for p, r, _ in roots)
    return build_from_sources(sources, Path(out_dir), rules, log, packages={p: d for p, _, d in roots},
                              picture_folders=True)


# --- reading ------------------------------------------------------------------------------------
def read_manifest(corpus: Path) -> dict:
    return json.loads((Path(corpus) / "manifest.json").read_text())


def corpus_manifest_hash(corpus: Path) -> str:
    """sha256 of ``manifest.json`` (which holds the sha256 of every image): names the corpus."""
    return hashlib.sha256((Path(corpus) / "manifest.json").read_bytes()).hexdigest()


def load_corpus(corpus: Path, split: str, verify: bool = False) -> list[np.ndarray]:
    """Images of one split (``train``, ``val`` or ``val-native``: :data:`SPLITS`) as HxWx3 uint8
    arrays, in manifest order (a split the corpus does not have gives none).
    ``verify``: check each file's sha256 against the manifest."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    out = []
    for f in read_manifest(corpus)["files"]:
        if f["split"] != split:
            continue
        data = (Path(corpus) / f["file"]).read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise ValueError(f"{f['file']}: sha256 does not match the manifest")
        with Image.open(io.BytesIO(data)) as im:
            out.append(np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8)))
    return out


def verify_corpus(corpus: Path) -> list[str]:
    """Problems found (an empty list when every file matches the manifest)."""
    problems = []
    for f in read_manifest(corpus)["files"]:
        p = Path(corpus) / f["file"]
        if not p.exists():
            problems.append(f"{f['file']}: missing")
        elif hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            problems.append(f"{f['file']}: sha256 differs")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shvc train corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/corpus", help="corpus folder (default data/corpus)")
    p.add_argument("--cache", default="data/cache", help="downloaded and unpacked .debs (default data/cache)")
    p.add_argument("--packages", nargs="*", default=list(PACKAGES), help="Debian packages ('prefix*' allowed)")
    p.add_argument("--max-short-side", type=int, default=Rules.max_short_side)
    p.add_argument("--max-long-side", type=int, default=Rules.max_long_side)
    p.add_argument("--native-crops", type=int, default=Rules.native_crops,
                   help="crops per JPEG/WebP picture at its decoded native resolution (default 0: none)")
    p.add_argument("--native-crop-side", type=int, default=Rules.native_crop_side)
    p.add_argument("--verify", action="store_true", help="only check OUT against its manifest")
    args = p.parse_args(argv)
    if args.verify:
        problems = verify_corpus(Path(args.out))
        for line in problems:
            print(line)
        print(f"{'FAILED' if problems else 'ok'}: manifest {corpus_manifest_hash(Path(args.out))}")
        return 1 if problems else 0
    rules = Rules(max_short_side=args.max_short_side, max_long_side=args.max_long_side,
                  native_crops=args.native_crops, native_crop_side=args.native_crop_side)
    build_corpus(Path(args.out), Path(args.cache), args.packages, rules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
