"""The compression queue as a Qt table model: one row per image, then a total row.

Columns: image (thumbnail, name and dimensions), original size, status (with progress), .shvc size,
its size against the original ("saved 4.9 %", "grew by 38.0 %" in red), BPD, initial-bit overhead,
and the BPD of each comparison codec. In every row the best (lowest) BPD is marked bold on a tinted
background. ``counts()`` is the one place the queue is counted (total row and status bar alike).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPixmap

from ..core.baselines import LABELS, BaselineResult
from ..core.codec import CompressResult, channels_of
from ..core.sizing import SizeChange, human_bytes, smallest_sentence
from .imaging import to_qimage

COMPARISON = ("png", "webp", "jxl", "flif")
(COL_IMAGE, COL_ORIGINAL, COL_STATUS, COL_SHVC, COL_CHANGE, COL_BPD, COL_OVERHEAD) = range(7)
COL_CODEC = {c: 7 + i for i, c in enumerate(COMPARISON)}
HEADERS = ["Image", "Original", "Status", ".shvc size", "vs original", "BPD", "Initial bits"] + \
          [LABELS[c] for c in COMPARISON]
BPD_COLUMNS = {"shvc": COL_BPD, **COL_CODEC}

WAITING, RUNNING, PAUSED, DONE, KEPT, FAILED, CANCELLED, SKIPPED = (
    "Waiting", "Compressing", "Paused", "Done", "Kept original", "Failed", "Cancelled", "Skipped")
RETRYABLE = (FAILED, CANCELLED, SKIPPED, KEPT)
GREW, SAVED = QColor(200, 40, 40), QColor(30, 135, 65)
_ids = itertools.count(1)


@dataclass
class QueueItem:
    src: Path
    id: int = field(default_factory=lambda: next(_ids))
    dst: Path | None = None
    width: int = 0
    height: int = 0
    original_bytes: int = 0
    thumbnail: QPixmap | None = None
    status: str = WAITING
    stage: str = ""
    fraction: float = 0.0
    message: str = ""                                 # error text or progress detail
    result: CompressResult | None = None
    baselines: dict[str, BaselineResult] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in (WAITING, RUNNING, PAUSED)

    @property
    def written(self) -> bool:
        """A .shvc file was written (not kept back because it would be larger)."""
        return self.result is not None and self.result.dst is not None

    def size_change(self) -> SizeChange | None:
        return SizeChange(self.original_bytes, self.result.n_bytes) if self.result is not None else None

    def size_note(self) -> str:
        """The size against the original and, once the comparisons are in, the smallest codec."""
        change = self.size_change()
        if change is None:
            return ""
        sizes = {"original": self.original_bytes, "shvc": self.result.n_bytes,
                 **{c: b.n_bytes for c, b in self.baselines.items()}}
        return " ".join(x for x in (change.describe(), smallest_sentence(sizes)) if x)

    def reset(self) -> None:
        """Back to waiting, as if just added (Retry)."""
        self.status, self.stage, self.fraction, self.message = WAITING, "", 0.0, ""
        self.dst, self.result, self.baselines = None, None, {}

    def bpd(self) -> dict[str, float | None]:
        """codec -> BPD for this image (None: not available); 'shvc' first."""
        out: dict[str, float | None] = {}
        if self.result is not None:
            out["shvc"] = self.result.bpd
        for c in COMPARISON:
            if c in self.baselines:
                out[c] = self.baselines[c].bpd
        return out

    def best_codec(self) -> str | None:
        vals = {c: v for c, v in self.bpd().items() if v is not None}
        return min(vals, key=vals.get) if vals else None


class QueueModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.items: list[QueueItem] = []
        self._totals: dict | None = None              # cached: the total row is painted often

    # -- structure --------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else (len(self.items) + 1 if self.items else 0)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole:
            return COLUMN_TIPS.get(section)
        return None

    def flags(self, index):
        if self.is_total(index.row()):
            return Qt.ItemIsEnabled
        return Qt.ItemIsEnabled | Qt.ItemIsSelectable

    def is_total(self, row: int) -> bool:
        return row == len(self.items)

    # -- items ------------------------------------------------------------------------------------
    def add(self, item: QueueItem) -> None:
        if not self.items:
            self.beginInsertRows(QModelIndex(), 0, 1)
        else:
            self.beginInsertRows(QModelIndex(), len(self.items), len(self.items))
        self.items.append(item)
        self.endInsertRows()
        self._total_changed()

    def remove_rows(self, rows: list[int]) -> list[QueueItem]:
        removed = []
        for row in sorted({r for r in rows if 0 <= r < len(self.items)}, reverse=True):
            last = len(self.items) == 1
            self.beginRemoveRows(QModelIndex(), row, row + 1 if last else row)
            removed.append(self.items.pop(row))
            self.endRemoveRows()
        self._total_changed()
        return removed

    def item(self, item_id: int) -> QueueItem | None:
        return next((it for it in self.items if it.id == item_id), None)

    def row_of(self, item_id: int) -> int:
        return next((i for i, it in enumerate(self.items) if it.id == item_id), -1)

    def counts(self) -> dict:
        """rows, finished (no longer waiting or running), compressed (have a result), and each status."""
        out = {"rows": len(self.items), "finished": sum(not it.active for it in self.items),
               "compressed": sum(it.result is not None for it in self.items)}
        for it in self.items:
            out[it.status] = out.get(it.status, 0) + 1
        return out

    def progress_text(self) -> str:
        """"4 of 6 done", shared by the total row and the status bar."""
        c = self.counts()
        return f"{c['finished']} of {c['rows']} done"

    def has_source(self, path: Path) -> bool:
        return any(it.src == path and it.active for it in self.items)

    def changed(self, item_id: int) -> None:
        row = self.row_of(item_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))
            self._total_changed()

    def _total_changed(self) -> None:
        self._totals = None
        if self.items:
            r = len(self.items)
            self.dataChanged.emit(self.index(r, 0), self.index(r, len(HEADERS) - 1))

    # -- totals -----------------------------------------------------------------------------------
    def totals(self) -> dict:
        """Over finished images: bytes saved, mean BPD of the .shvc files, and per codec
        8 * bytes / dims over the images every shown codec finished (like for like)."""
        if self._totals is None:
            self._totals = self._compute_totals()
        return self._totals

    def _compute_totals(self) -> dict:
        """images: compressed; original/written: bytes of the written files and of their originals
        (change: a SizeChange, None when nothing was written); bpd: over every compressed image."""
        done = [(it.bpd(), _dims(it), it) for it in self.items if it.result is not None]
        written = [it for _, _, it in done if it.written]
        out = {"images": len(done), "written": len(written), "bpd": {},
               "original": sum(it.original_bytes for it in written),
               "shvc": sum(it.result.n_bytes for it in written)}
        out["change"] = SizeChange(out["original"], out["shvc"]) if written else None
        if not done:
            return out
        dims = sum(d for _, d, _ in done)
        for c in ("shvc",) + COMPARISON:
            if all(vals.get(c) is not None for vals, _, _ in done):
                out["bpd"][c] = sum(vals[c] * d for vals, d, _ in done) / dims
        return out

    # -- display ----------------------------------------------------------------------------------
    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if self.is_total(row):
            return self._total_data(col, role)
        it = self.items[row]
        if role == Qt.DisplayRole:
            return self._text(it, col)
        if role == Qt.DecorationRole and col == COL_IMAGE:
            return it.thumbnail
        if role == Qt.ToolTipRole:
            if col == COL_STATUS and it.message:
                return it.message
            if col == COL_IMAGE:
                return str(it.src) + (f"\n→ {it.dst}" if it.dst else "")
            if col in (COL_SHVC, COL_CHANGE):
                return it.size_note() or None
            if col in (COL_OVERHEAD, COL_BPD) and it.result is not None and it.result.method != "fallback":
                return (f"{it.result.initial_bits} initial bits: {100 * it.result.overhead_fraction:.2f} % "
                        "of the file")
            if col in COL_CODEC.values():
                c = COMPARISON[col - 7]
                r = it.baselines.get(c)
                return f"{LABELS[c]}: {r.n_bytes} bytes, encode {r.encode_s:.2f} s" if r and r.n_bytes else None
        if role == Qt.TextAlignmentRole and col not in (COL_IMAGE, COL_STATUS):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == ProgressRole:
            return it.fraction if it.status in (RUNNING, PAUSED) else None
        if role == Qt.ForegroundRole and col == COL_CHANGE and it.result is not None:
            return QBrush(GREW if it.size_change().grew else SAVED)
        best = it.best_codec()
        if best is not None and col == BPD_COLUMNS.get(best):
            if role == Qt.FontRole:
                f = QFont()
                f.setBold(True)
                return f
            if role == Qt.BackgroundRole:
                return QBrush(QColor(60, 170, 90, 70))
        if role == Qt.ForegroundRole and col == COL_STATUS and it.status == FAILED:
            return QBrush(QColor(200, 40, 40))
        return None

    def _text(self, it: QueueItem, col: int) -> str | None:
        r = it.result
        if col == COL_IMAGE:
            return it.src.name + (f"\n{it.width} × {it.height}" if it.width else "")
        if col == COL_ORIGINAL:
            return human_bytes(it.original_bytes)
        if col == COL_STATUS:
            if it.status in (RUNNING, PAUSED):
                stage = "Paused" if it.status == PAUSED else \
                    STAGE_TEXT.get(it.stage, it.stage.capitalize() or "Starting")
                return f"{stage} {100 * it.fraction:.0f} %"
            return it.status if it.status != FAILED else f"Failed: {it.message}"
        if r is None:
            return ""
        if col == COL_SHVC:
            return human_bytes(r.n_bytes)
        if col == COL_CHANGE:
            return it.size_change().text()
        if col == COL_BPD:
            return f"{r.bpd:.3f}"
        if col == COL_OVERHEAD:
            if r.method == "fallback":
                return "no model"
            return f"{r.initial_bits} b"
        if col in COL_CODEC.values():
            b = it.baselines.get(COMPARISON[col - 7])
            if b is None:
                return ""
            return f"{b.bpd:.3f}" if b.bpd is not None else b.note
        return ""

    def _total_data(self, col: int, role):
        t = self.totals()
        if role == Qt.FontRole:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.TextAlignmentRole and col not in (COL_IMAGE, COL_STATUS):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        change = t["change"]
        if role == Qt.ForegroundRole and col == COL_CHANGE and change is not None:
            return QBrush(GREW if change.grew else SAVED)
        if role == Qt.ToolTipRole:
            if col == COL_CHANGE and change is not None:
                return f"The {t['written']} written .shvc files: {change.describe()}"
            if col in (COL_IMAGE, COL_STATUS):
                c = self.counts()
                return ", ".join(f"{c[s]} {s.lower()}" for s in STATUSES if c.get(s))
            return None
        if role != Qt.DisplayRole:
            return None
        if col == COL_IMAGE:
            return f"Total: {t['images']} compressed"
        if col == COL_STATUS:
            return self.progress_text()
        if change is not None and col in (COL_ORIGINAL, COL_SHVC, COL_CHANGE):
            return {COL_ORIGINAL: human_bytes(t["original"]), COL_SHVC: human_bytes(t["shvc"]),
                    COL_CHANGE: change.text()}[col]
        codec = next((c for c, k in BPD_COLUMNS.items() if k == col), None)
        if codec and codec in t["bpd"]:
            return f"{t['bpd'][codec]:.3f}"
        return ""


ProgressRole = Qt.UserRole + 1
STATUSES = (DONE, KEPT, RUNNING, PAUSED, WAITING, FAILED, CANCELLED, SKIPPED)
STAGE_TEXT = {"reading": "Reading", "read": "Reading", "compress": "Compressing", "baselines": "Comparing",
              "cancelling": "Cancelling"}
COLUMN_TIPS = {
    COL_BPD: "Bits per dimension of the .shvc file: 8 × file bytes / (channels × width × height)",
    COL_OVERHEAD: "Initial bits: bits the bits-back coder had to pay at the start and never got back "
                  "(and their share of the file)",
    COL_STATUS: "Double-click a row to see its image and where its bits go",
    COL_CHANGE: "The .shvc file's size against the original file: saved (green) or grew by (red)",
}


def _dims(it: QueueItem) -> int:
    r = it.result
    return channels_of(r.mode) * r.width * r.height


def pixmap_of(arr: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(arr))

