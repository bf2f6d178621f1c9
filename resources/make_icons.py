"""Render resources/shvc-gui.svg into the hicolor PNG sizes (run after editing the SVG):

    QT_QPA_PLATFORM=offscreen .venv/bin/python resources/make_icons.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SIZES = (16, 32, 48, 64, 128, 256)


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - needed for painting
    svg = HERE / "shvc-gui.svg"
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        print(f"{svg} is not a valid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        img = QImage(size, size, QImage.Format_ARGB32)
        img.fill(Qt.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        renderer.render(p)
        p.end()
        out = HERE / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "shvc-gui.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(str(out), "PNG")
    scalable = HERE / "icons" / "hicolor" / "scalable" / "apps" / "shvc-gui.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    print(f"wrote {len(SIZES)} PNG sizes and the scalable SVG under {HERE / 'icons'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
