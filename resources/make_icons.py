"""Render resources/shvc-gui.svg into the hicolor PNG sizes and copy it as the scalable icon.
Run it after editing the SVG (idempotent: files whose bytes would not change are left untouched):

    QT_QPA_PLATFORM=offscreen .venv/bin/python resources/make_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SVG = HERE / "shvc-gui.svg"
ICONS = HERE / "icons" / "hicolor"
SIZES = (16, 32, 48, 64, 128, 256)


def render_png(renderer: QSvgRenderer, size: int) -> bytes:
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(p)
    p.end()
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    img.save(buf, "PNG")
    buf.close()
    return bytes(data.data())


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # painting needs one
    renderer = QSvgRenderer(str(SVG), app)
    if not renderer.isValid():
        print(f"make_icons: error: {SVG} is not a valid SVG", file=sys.stderr)
        return 1
    outputs = {ICONS / f"{s}x{s}" / "apps" / "shvc-gui.png": render_png(renderer, s) for s in SIZES}
    outputs[ICONS / "scalable" / "apps" / "shvc-gui.svg"] = SVG.read_bytes()
    changed = [p for p, data in outputs.items() if write_if_changed(p, data)]
    for p in changed:
        print(f"wrote {p.relative_to(HERE.parent)}")
    print(f"{len(changed)} of {len(outputs)} icon files changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
