"""Desktop integration files: .desktop entry, MIME type with magic, icons, per-user installer."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "resources"
INSTALLER = RES / "install_desktop.py"
SIZES = (16, 32, 48, 64, 128, 256)
MIME_NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}


def read_desktop(path: Path) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",), comment_prefixes=("#",))
    cp.optionxform = str  # keys are case-sensitive
    cp.read_string(path.read_text(encoding="utf-8"), source=str(path))
    assert cp.sections() == ["Desktop Entry"]
    return cp["Desktop Entry"]


def installed_files(prefix: Path) -> list[Path]:
    files = [prefix / "applications" / "shvc-gui.desktop", prefix / "mime" / "packages" / "shvc-gui-mime.xml",
             prefix / "icons" / "hicolor" / "scalable" / "apps" / "shvc-gui.svg"]
    files += [prefix / "icons" / "hicolor" / f"{s}x{s}" / "apps" / "shvc-gui.png" for s in SIZES]
    return files


def run_installer(*args, env=None):
    return subprocess.run([sys.executable, str(INSTALLER), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_desktop_entry():
    e = read_desktop(RES / "shvc-gui.desktop")
    assert e["Type"] == "Application" and e["Name"] == "SHVC Image Compressor"
    assert e["GenericName"] and e["Comment"]
    assert e["Icon"] == "shvc-gui" and e["Terminal"] == "false"
    assert e["Exec"] == "shvc-gui %F"
    assert e["Categories"] == "Graphics;Utility;Qt;"
    mimes = e["MimeType"].split(";")
    assert mimes[-1] == "" and "image/x-shvc" in mimes
    assert {"image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff", "image/gif", "image/jxl"} <= set(mimes)


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-validate not installed")
def test_desktop_entry_validates():
    r = subprocess.run(["desktop-file-validate", str(RES / "shvc-gui.desktop")], capture_output=True, text=True)
    assert r.returncode == 0 and "error:" not in r.stdout, r.stdout + r.stderr


def test_mime_type_has_glob_and_magic():
    root = ET.parse(RES / "shvc-gui-mime.xml").getroot()
    assert root.tag == f"{{{MIME_NS['m']}}}mime-info"
    (t,) = root.findall("m:mime-type", MIME_NS)
    assert t.get("type") == "image/x-shvc"
    assert t.find("m:comment", MIME_NS).text == "SHVC losslessly compressed image"
    assert [g.get("pattern") for g in t.findall("m:glob", MIME_NS)] == ["*.shvc"]
    assert t.find("m:generic-icon", MIME_NS).get("name") == "image-x-generic"
    assert t.find("m:sub-class-of", MIME_NS) is None  # application/octet-stream is implied
    magic = t.find("m:magic", MIME_NS)
    assert magic.get("priority") == "50"
    (match,) = magic.findall("m:match", MIME_NS)
    assert (match.get("type"), match.get("value"), match.get("offset")) == ("string", "SHVC", "0")


def test_icon_svg_and_pngs():
    svg = ET.parse(RES / "shvc-gui.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("viewBox") == "0 0 256 256"
    assert (RES / "icons" / "hicolor" / "scalable" / "apps" / "shvc-gui.svg").read_bytes() == \
        (RES / "shvc-gui.svg").read_bytes()
    for size in SIZES:
        with Image.open(RES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "shvc-gui.png") as im:
            assert im.format == "PNG" and im.size == (size, size) and im.mode == "RGBA"
            alpha = im.getchannel("A")
            assert alpha.getextrema() == (0, 255)          # drawn, with transparent corners
            assert alpha.getpixel((size // 2, size // 2)) == 255


def test_install_and_uninstall(tmp_path):
    prefix = tmp_path / "share"
    other = prefix / "applications" / "other.desktop"   # someone else's file: must survive --uninstall
    other.parent.mkdir(parents=True)
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    r = run_installer("--prefix", str(prefix), "--exec", "/opt/my apps/shvc-gui")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for f in installed_files(prefix):
        assert f.is_file(), f
    entry = read_desktop(prefix / "applications" / "shvc-gui.desktop")
    assert entry["Exec"] == '"/opt/my apps/shvc-gui" %F'
    assert entry["TryExec"] == "/opt/my apps/shvc-gui"
    assert entry["MimeType"] == read_desktop(RES / "shvc-gui.desktop")["MimeType"]
    assert (prefix / "mime" / "packages" / "shvc-gui-mime.xml").read_bytes() == (RES / "shvc-gui-mime.xml").read_bytes()
    assert (prefix / "icons" / "hicolor" / "48x48" / "apps" / "shvc-gui.png").read_bytes() == \
        (RES / "icons" / "hicolor" / "48x48" / "apps" / "shvc-gui.png").read_bytes()
    if shutil.which("desktop-file-validate"):
        v = subprocess.run(["desktop-file-validate", str(prefix / "applications" / "shvc-gui.desktop")],
                           capture_output=True, text=True)
        assert v.returncode == 0, v.stdout

    r = run_installer("--prefix", str(prefix), "--uninstall")
    assert r.returncode == 0, r.stderr
    for f in installed_files(prefix):
        assert not f.exists(), f
    assert not list(prefix.rglob("shvc-gui*"))
    assert other.exists()
    r = run_installer("--prefix", str(prefix), "--uninstall")   # again: nothing left, still fine
    assert r.returncode == 0 and "nothing to remove" in r.stdout


def test_exec_path_with_reserved_characters(tmp_path):
    prefix = tmp_path / "share"
    r = run_installer("--prefix", str(prefix), "--exec", '/opt/a "b" $c\\d/100%/shvc-gui')
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in (prefix / "applications" / "shvc-gui.desktop").read_text().splitlines()
                if ln.startswith("Exec="))
    # quoting rule (\" \$ \\ inside quotes), %% for a literal %, then the string escape of backslashes
    assert line == 'Exec="/opt/a \\\\"b\\\\" \\\\$c\\\\\\\\d/100%%/shvc-gui" %F'


def test_unwritable_prefix_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_installer("--prefix", str(blocker / "share"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("install_desktop: error: cannot write under"), r.stderr
    assert blocker.read_text() == "not a folder"


def test_default_prefix_follows_xdg(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    r = run_installer(env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "xdg" / "applications" / "shvc-gui.desktop").exists()
    r = run_installer("--uninstall", env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "xdg" / "applications" / "shvc-gui.desktop").exists()


def test_makefile_targets():
    text = (ROOT / "Makefile").read_text()
    phony = next(ln for ln in text.splitlines() if ln.startswith(".PHONY:")).split()
    assert "install-desktop" in phony and "uninstall-desktop" in phony
    assert "install-desktop: venv" in text
    assert '$(BIN)/python resources/install_desktop.py --exec "$(abspath $(BIN))/shvc-gui"' in text
