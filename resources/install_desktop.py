"""Install (or remove) the desktop integration for the current user: the .desktop entry, the icons
and the image/x-shvc MIME type. Standard library only; `make install-desktop` runs it.

    python3 resources/install_desktop.py --exec /path/to/.venv/bin/shvc-gui
    python3 resources/install_desktop.py --uninstall
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


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def planned(prefix: Path) -> list[tuple[Path, Path]]:
    """(source, destination) of every file the installer writes."""
    files = [(HERE / DESKTOP, prefix / "applications" / DESKTOP),
             (HERE / MIME_XML, prefix / "mime" / "packages" / MIME_XML)]
    icons = HERE / "icons"
    for src in sorted(icons.rglob("shvc-gui.*")):
        files.append((src, prefix / "icons" / src.relative_to(icons)))
    return files


def _run_if_present(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cmd[0]


def install(prefix: Path, exec_path: str | None) -> list[str]:
    done = []
    for src, dst in planned(prefix):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.name == DESKTOP and exec_path:
            text = src.read_text(encoding="utf-8")
            text = text.replace("Exec=shvc-gui %F", f"Exec={_quote(exec_path)} %F")
            text = text.replace("TryExec=shvc-gui", f"TryExec={exec_path}")
            dst.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(src, dst)
        done.append(str(dst))
    return done


def uninstall(prefix: Path) -> list[str]:
    done = []
    for _, dst in planned(prefix):
        if dst.exists():
            dst.unlink()
            done.append(str(dst))
    return done


def refresh(prefix: Path) -> list[str]:
    ran = [_run_if_present(["update-mime-database", str(prefix / "mime")]),
           _run_if_present(["update-desktop-database", str(prefix / "applications")]),
           _run_if_present(["gtk-update-icon-cache", "-q", "-t", "-f", str(prefix / "icons" / "hicolor")])]
    return [r for r in ran if r]


def _quote(path: str) -> str:
    """Quote an Exec argument per the Desktop Entry spec when it holds spaces or reserved characters."""
    if any(c in path for c in ' \t"\'\\><~|&;$*?#()`'):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$") + '"'
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Install the shvc-gui desktop entry, icons and MIME type.")
    p.add_argument("--exec", dest="exec_path", help="absolute path of the shvc-gui program for the menu entry")
    p.add_argument("--prefix", type=Path, default=None, help="data folder (default: $XDG_DATA_HOME or "
                   "~/.local/share)")
    p.add_argument("--uninstall", action="store_true", help="remove what an install wrote")
    args = p.parse_args(argv)
    prefix = args.prefix or data_home()
    try:
        files = uninstall(prefix) if args.uninstall else install(prefix, args.exec_path)
    except OSError as exc:
        print(f"install_desktop: error: cannot write under {prefix} ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    tools = refresh(prefix)
    verb = "removed" if args.uninstall else "installed"
    print(f"{verb} {len(files)} files under {prefix}" + (f"; ran {', '.join(tools)}" if tools else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
