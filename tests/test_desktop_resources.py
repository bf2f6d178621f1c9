"""Desktop integration files: .desktop entry, MIME type with magic, icons, per-user installer."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

RES = Path(__file__).resolve().parents[1] / "resources"
INSTALLER = RES / "install_desktop.py"


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str
    cp.read(RES / "shvc-gui.desktop", encoding="utf-8")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application" and e["Icon"] == "shvc-gui" and e["Terminal"] == "false"
    assert e["Exec"].split()[-1] == "%F"
    mimes = e["MimeType"].rstrip(";").split(";")
    assert "image/x-shvc" in mimes and "image/png" in mimes and e["MimeType"].endswith(";")
    assert e["Categories"].endswith(";")


def test_mime_type_has_glob_and_magic():
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(RES / "shvc-gui-mime.xml").getroot()
    t = root.find("m:mime-type", ns)
    assert t.get("type") == "image/x-shvc"
    assert t.find("m:glob", ns).get("pattern") == "*.shvc"
    match = t.find("m:magic/m:match", ns)
    assert (match.get("type"), match.get("value"), match.get("offset")) == ("string", "SHVC", "0")


def test_icons_exist_in_every_size():
    for size in (16, 32, 48, 64, 128, 256):
        with Image.open(RES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "shvc-gui.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
            assert im.getextrema()[3][1] == 255            # not blank
    assert (RES / "icons" / "hicolor" / "scalable" / "apps" / "shvc-gui.svg").read_bytes() == \
        (RES / "shvc-gui.svg").read_bytes()


def run_installer(*args, env=None):
    return subprocess.run([sys.executable, str(INSTALLER), *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_install_and_uninstall(tmp_path):
    prefix = tmp_path / "share"
    r = run_installer("--prefix", str(prefix), "--exec", "/opt/my apps/shvc-gui")
    assert r.returncode == 0, r.stderr
    desktop = (prefix / "applications" / "shvc-gui.desktop").read_text()
    assert 'Exec="/opt/my apps/shvc-gui" %F' in desktop
    assert (prefix / "mime" / "packages" / "shvc-gui-mime.xml").exists()
    assert (prefix / "icons" / "hicolor" / "48x48" / "apps" / "shvc-gui.png").exists()
    r = run_installer("--prefix", str(prefix), "--uninstall")
    assert r.returncode == 0, r.stderr
    assert not (prefix / "applications" / "shvc-gui.desktop").exists()
    assert not list(prefix.rglob("shvc-gui*"))


def test_unwritable_prefix_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_installer("--prefix", str(blocker / "share"))
    assert r.returncode == 1
    assert "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_default_prefix_follows_xdg(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    r = run_installer(env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "xdg" / "applications" / "shvc-gui.desktop").exists()
