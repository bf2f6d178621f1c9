"""Install (or remove) the desktop integration for the current user: the .desktop entry, the icons
and the image/x-shvc MIME type. Standard library only; `make install-desktop` runs it.

    python3 resources/install_desktop.py --exec /path/to/.venv/bin/shvc-gui
    python3 resources/install_desktop.py --uninstall
    python3 resources/install_desktop.py --prefix /tmp/share      # elsewhere than ~/.local/share

Files go under $XDG_DATA_HOME (default ~/.local/share):
    applications/shvc-gui.desktop, icons/hicolor/<size>/apps/shvc-gui.{png,svg},
    mime/packages/shvc-gui-mime.xml
then update-mime-database and update-desktop-database run when installed, and gtk-update-icon-cache
when the icon folder already has a cache (see refresh()).
--uninstall removes exactly those files (folders are left in place) and refreshes the same caches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DESKTOP = "shvc-gui.desktop"
MIME_XML = "shvc-gui-mime.xml"
ICONS = HERE / "icons"
ICON_SIZES = ("16x16", "32x32", "48x48", "64x64", "128x128", "256x256")


class InstallError(Exception):
    """An expected failure: reported as one line, exit status 1."""


def data_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec: a relative value is invalid and must be ignored.
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"


def planned(prefix: Path) -> list[tuple[Path, Path]]:
    """(source, destination) of every file the installer writes: a fixed list, so that --uninstall
    removes exactly these and nothing else."""
    files = [(HERE / DESKTOP, prefix / "applications" / DESKTOP),
             (HERE / MIME_XML, prefix / "mime" / "packages" / MIME_XML)]
    for size in ICON_SIZES:
        rel = Path("hicolor") / size / "apps" / "shvc-gui.png"
        files.append((ICONS / rel, prefix / "icons" / rel))
    rel = Path("hicolor") / "scalable" / "apps" / "shvc-gui.svg"
    files.append((ICONS / rel, prefix / "icons" / rel))
    return files


def escape_string(value: str) -> str:
    """Escape a Desktop Entry string value (backslash, newline, tab, carriage return)."""
    return (value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
            .replace("\r", "\\r"))


def exec_argument(path: str) -> str:
    """One Exec argument per the Desktop Entry spec: quoted when it holds a reserved character
    (inside quotes ", `, $ and \\ take a backslash), '%' doubled, then escaped as a string value."""
    if any(c in path for c in ' \t\n"\'\\><~|&;$*?#()`'):
        path = '"' + "".join("\\" + c if c in '"`$\\' else c for c in path) + '"'
    return escape_string(path.replace("%", "%%"))


def desktop_text(exec_path: str | None) -> str:
    text = (HERE / DESKTOP).read_text(encoding="utf-8")
    if not exec_path:
        return text
    lines = []
    for line in text.splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_argument(exec_path)} %F"
        elif line.startswith("TryExec="):
            line = f"TryExec={escape_string(exec_path)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def check_sources() -> None:
    missing = [str(src) for src, _ in planned(Path("/")) if not src.is_file()]
    if missing:
        raise InstallError(f"missing {len(missing)} resource file(s), e.g. {missing[0]} (run "
                           "QT_QPA_PLATFORM=offscreen .venv/bin/python resources/make_icons.py)")


def install(prefix: Path, exec_path: str | None) -> list[Path]:
    check_sources()
    written: list[Path] = []
    tmp: Path | None = None
    try:
        for src, dst in planned(prefix):
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            if src.name == DESKTOP:
                tmp.write_text(desktop_text(exec_path), encoding="utf-8")
            else:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            tmp = None
            written.append(dst)
    except OSError as exc:
        for path in written:  # leave no half installation behind
            try:
                path.unlink()
            except OSError:
                pass
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
        raise InstallError(f"cannot write under {prefix}: {describe(exc)}") from None
    return written


def uninstall(prefix: Path) -> list[Path]:
    removed = []
    for _, dst in planned(prefix):
        try:
            dst.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InstallError(f"cannot remove {dst}: {describe(exc)}") from None
        removed.append(dst)
    return removed


def refresh(prefix: Path) -> list[str]:
    """Run the cache tools that exist; returns one note per tool run.

    The icon theme folder is touched, which makes GTK ignore an out-of-date icon-theme.cache, and
    gtk-update-icon-cache only refreshes a cache that the theme folder already has (or may have, with an
    index.theme): creating one in a per-user hicolor folder would hide icons that other programs add
    later without updating it (xdg-icon-resource follows the same rule)."""
    notes = []
    hicolor = prefix / "icons" / "hicolor"
    if hicolor.is_dir():
        try:
            os.utime(hicolor)
        except OSError:
            pass
    steps = [(["update-mime-database"], prefix / "mime"),
             (["update-desktop-database", "-q"], prefix / "applications")]
    if (hicolor / "icon-theme.cache").exists() or (hicolor / "index.theme").exists():
        steps.append((["gtk-update-icon-cache", "-q", "-t", "-f"], hicolor))
    for cmd, folder in steps:
        if shutil.which(cmd[0]) is None or not folder.is_dir():
            continue
        try:
            r = subprocess.run([*cmd, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            notes.append(f"warning: {cmd[0]} could not run ({exc})")
            continue
        if r.returncode == 0:
            notes.append(f"ran {cmd[0]} {folder}")
        else:
            err = (r.stderr.strip().splitlines() or [""])[-1]
            notes.append(f"warning: {cmd[0]} {folder} failed (exit {r.returncode}){': ' + err if err else ''}")
    return notes


def describe(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="install_desktop.py",
                                description="Install the shvc-gui menu entry, icons and the image/x-shvc "
                                            "MIME type for the current user.")
    p.add_argument("--exec", dest="exec_path", metavar="PATH",
                   help="the shvc-gui program the menu entry starts (made absolute; default: shvc-gui "
                        "from PATH)")
    p.add_argument("--prefix", type=Path, default=None, metavar="DIR",
                   help="data folder to install into (default: $XDG_DATA_HOME or ~/.local/share)")
    p.add_argument("--uninstall", action="store_true", help="remove the files an install writes")
    args = p.parse_args(argv)
    prefix = (args.prefix or data_home()).expanduser().absolute()
    exec_path = os.path.abspath(os.path.expanduser(args.exec_path)) if args.exec_path else None
    try:
        if args.uninstall:
            files = uninstall(prefix)
        else:
            if exec_path and not os.access(exec_path, os.X_OK):
                print(f"install_desktop: warning: {exec_path} is not an executable file (yet); the menu "
                      "entry will stay hidden until it is", file=sys.stderr)
            files = install(prefix, exec_path)
    except InstallError as exc:
        print(f"install_desktop: error: {exc}", file=sys.stderr)
        return 1
    verb = "removed" if args.uninstall else "installed"
    for f in files:
        print(f"{verb} {f}")
    if args.uninstall and not files:
        print(f"nothing to remove under {prefix}")
    for note in refresh(prefix):
        print(note)
    print(f"{verb} {len(files)} file(s) under {prefix}"
          + (f" (menu entry starts {exec_path})" if exec_path and not args.uninstall else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
