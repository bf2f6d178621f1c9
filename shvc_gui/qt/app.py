"""``shvc-gui [FILE...]``: the desktop application. Images given on the command line join the queue;
.shvc files open in a viewer (the .desktop file passes %F)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import __version__


def parse_args(argv):
    p = argparse.ArgumentParser(prog="shvc-gui", description="Lossless image compression with SHVC.")
    p.add_argument("files", nargs="*", help="images or folders to compress, .shvc files to open")
    p.add_argument("--version", action="version", version=f"shvc-gui {__version__}")
    p.add_argument("--quit-after", type=float, default=0, help=argparse.SUPPRESS)  # smoke tests
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .main_window import ICON, MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("shvc-gui")
    app.setApplicationName("shvc-gui")
    app.setApplicationDisplayName("SHVC")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("shvc-gui")
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow()
    window.show()
    if args.files:
        QTimer.singleShot(0, lambda: window.add_paths(args.files))
    if args.quit_after > 0:
        QTimer.singleShot(int(1000 * args.quit_after), window.close)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0


if __name__ == "__main__":
    sys.exit(main())
