"""A window for one opened .shvc file: decoded in the background, shown with its header, exportable."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QProgressBar, QPushButton,
                               QSplitter, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ..core import codec, image_io
from ..core.errors import ShvcError
from .dialogs import show_error
from .heatmap_view import SyncedImageViews

EXPORT_FILTERS = {"png": "PNG image (*.png)", "tiff": "TIFF image (*.tiff *.tif)",
                  "webp": "WebP lossless (*.webp)", "bmp": "BMP image (*.bmp)"}
_requests = itertools.count(1)


class ShvcViewer(QMainWindow):
    """Opens ``path`` with ``workers`` (shvc_gui.qt.workers.Workers). On failure it shows an error
    dialog (``error_dialog``) and closes, leaving everything as it was."""
    failed = Signal(str)
    loaded = Signal()

    def __init__(self, path: Path, workers, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.path, self.workers = Path(path), workers
        self.image = self.header = None
        self.error_dialog = None
        self.request = next(_requests)
        self._cancel = threading.Event()
        self.setWindowTitle(f"{self.path.name} — SHVC")
        self.resize(1100, 700)

        self.view = SyncedImageViews()
        self.view.show_heatmap(False)
        self.props = QTreeWidget()
        self.props.setHeaderLabels(["Property", "Value"])
        self.props.setColumnWidth(0, 160)
        self.props.setMinimumWidth(340)
        self.export_button = QPushButton("Export…")
        self.export_button.setShortcut(QKeySequence.Save)
        self.export_button.setToolTip("Write the exact original pixels and metadata as PNG, TIFF, WebP or BMP")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_dialog)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setFormat("Decoding…")
        self.busy.setTextVisible(True)

        side = QWidget()
        lay = QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.props, 1)
        row = QHBoxLayout()
        row.addWidget(self.busy, 1)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        split = QSplitter()
        split.addWidget(self.view)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([700, 400])
        self.setCentralWidget(split)
        self.status = QLabel("Decoding…")
        self.statusBar().addWidget(self.status, 1)

        self._connected = False
        self._fill_header()
        if self.header is not None:
            workers.bridge.decoded.connect(self._on_decoded)
            workers.bridge.decode_failed.connect(self._on_failed)
            self._connected = True
            workers.decode(self.request, self.path, self._cancel)

    def _fill_header(self) -> None:
        try:
            self.header = codec.read_header(self.path)
        except ShvcError as exc:
            self._on_failed(self.request, str(exc))
            return
        d = codec.describe(self.header, self.path)
        self.props.clear()
        pretty = {
            "File": self.path.name, "Size": f"{d['bytes']:,} bytes",
            "Dimensions": f"{d['width']} × {d['height']}", "Pixel format": f"{d['mode']} ({d['bit_depth']}-bit)",
            "Bits per dimension": f"{d['bpd']:.4f}", "Coded by": _method_text(self.header),
            "Model": d["model"] or "—", "Weights sha256": (d["weights_sha256"] or "—")[:16],
            "Variant": d["variant"] or "—", "Patches": f"{d['patches']} of {d['patch']}×{d['patch']}"
            if d["patches"] else ("none: the whole image" if d["payload_bits"] else "—"),
            "Initial bits": _overhead_text(self.header, d["bytes"]),
            "Model's ideal size": f"{d['model_ideal_bits'] / 8:,.0f} bytes" if d["payload_bits"] else "—",
            "Original format": d["source_format"] or "—", "Format version": str(d["format_version"]),
        }
        for k, v in pretty.items():
            QTreeWidgetItem(self.props, [k, str(v)])
        meta = QTreeWidgetItem(self.props, ["Metadata", ""])
        m = d["metadata"]
        QTreeWidgetItem(meta, ["ICC profile", f"{m['icc']:,} bytes" if m["icc"] else "none"])
        QTreeWidgetItem(meta, ["EXIF", f"{m['exif']:,} bytes" if m["exif"] else "none"])
        QTreeWidgetItem(meta, ["Text chunks", ", ".join(m["text"]) or "none"])
        meta.setExpanded(True)

    def _on_decoded(self, request: int, img, header) -> None:
        if request != self.request:
            return
        self.image, self.header = img, header
        self.view.set_images(image_io.to_display(img), None)
        self.busy.hide()
        self.export_button.setEnabled(True)
        self.status.setText("Decoded; the pixels match the checksum stored in the file.")
        self.loaded.emit()

    def _on_failed(self, request: int, message: str) -> None:
        if request != self.request:
            return
        self.error_dialog = show_error(self.parentWidget() or self, f"Cannot open {self.path.name}", message)
        self.failed.emit(message)
        self.close()

    def export_dialog(self) -> None:
        if self.image is None:
            return
        fmt = image_io.preferred_format(self.image.mode) or "png"
        start = str(self.path.with_suffix("." + fmt))
        filters = ";;".join(EXPORT_FILTERS.values())
        name, chosen = QFileDialog.getSaveFileName(self, "Export image", start, filters, EXPORT_FILTERS[fmt])
        if name:     # the dialog has asked before replacing an existing file
            self.export(Path(name), force=True)

    def export(self, dst: Path, force: bool = False) -> bool:
        try:
            notes = image_io.save_image(self.image, dst, force=force)
        except ShvcError as exc:
            self.error_dialog = show_error(self, "Export failed", str(exc))
            return False
        extra = (" " + " ".join(notes)) if notes else ""
        self.status.setText(f"Exported {dst.name}.{extra}")
        return True

    def closeEvent(self, event) -> None:
        self._cancel.set()
        if self._connected:
            self.workers.bridge.decoded.disconnect(self._on_decoded)
            self.workers.bridge.decode_failed.disconnect(self._on_failed)
            self._connected = False
        super().closeEvent(event)


def _method_text(h) -> str:
    if h.method == image_io.METHOD_MODEL:
        return "the SHVC model"
    if h.method == image_io.METHOD_MIXED:
        return "the SHVC model (colour) + embedded lossless stream (alpha)"
    return "embedded lossless stream (no model for this pixel format)"


def _overhead_text(h, n_bytes: int) -> str:
    if not h.total_bits:
        return "—"
    return f"{h.initial_bits} bits ({100 * h.initial_bits / max(1, 8 * n_bytes):.2f} % of the file)"
