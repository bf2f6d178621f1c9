"""The main window: a queue of images to compress, their results, a comparison chart and a detail
view with the heatmap of where the bits go. All coding runs in shvc_gui.qt.workers."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox, QProgressBar, QScrollArea,
                               QSplitter, QStackedWidget, QStyle, QTabWidget, QVBoxLayout, QWidget)

from .. import __version__
from ..core import baselines, codec, image_io
from ..core.files import walk
from ..core.sizing import human_bytes
from . import dialogs
from .chart import BpdChart
from .drop_zone import DropZone
from .heatmap_view import SyncedImageViews
from .open_view import ShvcViewer
from .queue_model import (CANCELLED, COL_CODEC, DONE, FAILED, KEPT, PAUSED, RETRYABLE, RUNNING, SKIPPED, WAITING,
                          QueueItem, QueueModel, pixmap_of)
from .queue_view import QueueView
from .settings import Settings, SettingsDialog
from .workers import CompressRequest, JobControl, Workers, cpu_threads

ICON = Path(__file__).resolve().parents[2] / "resources" / "shvc-gui.svg"
IMAGE_FILTER = "Images and .shvc files (" + " ".join(
    "*" + s for s in sorted(image_io.READ_SUFFIXES | {".shvc"})) + ");;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, model=None, workers: Workers | None = None):
        super().__init__()
        self.settings = settings or Settings()
        self.workers = workers or Workers(model)
        self.queue = QueueModel(self)
        self.viewers: list[ShvcViewer] = []
        self.error_dialog = None
        self._preview_for: int | None = None
        self._paused = False
        self._started_at: float | None = None
        self.setWindowTitle(TITLE)        # Qt adds the application's display name ("SHVC") after it
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._connect_workers()
        self.resize(1280, 800)
        geometry = self.settings.store.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._update_actions()

    # -- construction -----------------------------------------------------------------------------
    def _action(self, text, slot, shortcut=None, tip="", icon=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            a.setIcon(self.style().standardIcon(icon))
        a.setToolTip(tip or text)
        a.setStatusTip(tip or text)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open…", self.open_dialog, QKeySequence.Open,
                                     "Add images to the queue, or open .shvc files", QStyle.SP_DialogOpenButton)
        self.act_folder = self._action("Add &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                       "Add every image in a folder", QStyle.SP_DirOpenIcon)
        self.act_paste = self._action("&Paste", self.paste, QKeySequence.Paste,
                                      "Add the image or files on the clipboard")
        self.act_start = self._action("&Compress", self.start, "Ctrl+Return",
                                      "Compress the waiting images", QStyle.SP_MediaPlay)
        self.act_pause = self._action("P&ause", self.toggle_pause, "Ctrl+P",
                                      "Pause the running job (Ctrl+P again resumes it)", QStyle.SP_MediaPause)
        self.act_pause.setCheckable(True)
        self.act_retry = self._action("Re&try", self.retry_selected, "Ctrl+R",
                                      "Queue the selected failed, cancelled, skipped or kept images again",
                                      QStyle.SP_BrowserReload)
        self.act_cancel = self._action("C&ancel", self.cancel, Qt.Key_Escape,
                                       "Stop the job; no half-written file is left", QStyle.SP_MediaStop)
        self.act_remove = self._action("&Remove", self.remove_selected, QKeySequence.Delete,
                                       "Remove the selected images from the queue", QStyle.SP_TrashIcon)
        self.act_clear = self._action("Clear finished", self.clear_finished, None,
                                      "Remove finished, failed and cancelled images from the queue")
        self.act_folder_open = self._action("Show in &folder", self.open_containing_folder, "Ctrl+Shift+F",
                                            "Show the selected image's .shvc file in the file manager",
                                            QStyle.SP_DirLinkIcon)
        self.act_open_result = self._action("Open .shvc &file", self.open_selected_result, None,
                                            "Decode the selected image's .shvc file and show it")
        self.act_settings = self._action("&Settings…", self.settings_dialog, QKeySequence.Preferences,
                                         "Output folder, device, model variant, comparison codecs",
                                         QStyle.SP_FileDialogDetailedView)
        self.act_help = self._action("&About and help", self.about, QKeySequence.HelpContents, "What the figures mean")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.Quit)

        bar = self.menuBar()
        m = bar.addMenu("&File")
        for a in (self.act_open, self.act_folder, self.act_paste, None, self.act_open_result,
                  self.act_folder_open, None, self.act_settings, None, self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = bar.addMenu("&Queue")
        for a in (self.act_start, self.act_pause, self.act_cancel, None, self.act_retry, self.act_remove,
                  self.act_clear):
            m.addSeparator() if a is None else m.addAction(a)
        bar.addMenu("&Help").addAction(self.act_help)

        tb = self.toolbar = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        for a in (self.act_open, self.act_folder, None, self.act_start, self.act_pause, self.act_cancel, None,
                  self.act_retry, self.act_remove, self.act_folder_open, None, self.act_settings):
            tb.addSeparator() if a is None else tb.addAction(a)

    def _build_ui(self) -> None:
        self.queue_view = QueueView(self.queue)
        self.table = self.queue_view.table
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(lambda _: self.tabs.setCurrentWidget(self.detail_page))
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.queue.rowsInserted.connect(self._queue_shape_changed)
        self.queue.rowsRemoved.connect(self._queue_shape_changed)
        self.queue.dataChanged.connect(lambda *_: self._update_actions())
        self.drop_zone = DropZone(self.open_dialog, self.open_folder_dialog)
        self._show_codec_columns()

        self.chart = BpdChart()
        chart_scroll = QScrollArea()
        chart_scroll.setWidgetResizable(True)
        chart_scroll.setWidget(self.chart)
        self.detail = SyncedImageViews()
        self.detail_label = QLabel("Select an image in the queue to see it and where its bits go.")
        self.detail_label.setWordWrap(True)
        self.detail_page = QWidget()
        lay = QVBoxLayout(self.detail_page)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.detail_label)
        lay.addWidget(self.detail, 1)
        self.detail.hovered.connect(self._hovered)
        self.tabs = QTabWidget()
        self.tabs.addTab(chart_scroll, "Comparison")
        self.tabs.addTab(self.detail_page, "Image and heatmap")

        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(self.queue_view)
        self.split.addWidget(self.tabs)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)
        self.pages = QStackedWidget()              # the empty window is one drop zone
        self.pages.addWidget(self.drop_zone)
        self.pages.addWidget(self.split)
        self.setCentralWidget(self.pages)

        self.overall = QProgressBar()
        self.overall.setMaximumWidth(260)
        self.overall.setTextVisible(True)
        self.overall.hide()
        self.status = QLabel()
        self.device_label = QLabel(self._device_text())
        sb = self.statusBar()
        sb.addWidget(self.status, 1)
        sb.addPermanentWidget(self.overall)
        sb.addPermanentWidget(self.device_label)

    def codecs(self) -> tuple[str, ...]:
        """The comparison codecs chosen in the settings that are installed."""
        return tuple(c for c in self.settings.codecs if baselines.available(c))

    def _show_codec_columns(self) -> None:
        """Columns only for the codecs that are compared (one not installed is not shown at all)."""
        for c, col in COL_CODEC.items():
            self.queue_view.set_column_hidden(col, c not in self.codecs())

    def _device_text(self) -> str:
        import torch
        if self.settings.device != "cpu" and torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        n = cpu_threads()
        return f"CPU, {n} thread{'s' * (n != 1)}"

    def _connect_workers(self) -> None:
        b = self.workers.bridge
        b.started.connect(self._on_started)
        b.progress.connect(self._on_progress)
        b.compressed.connect(self._on_compressed)
        b.baseline.connect(self._on_baseline)
        b.finished.connect(self._on_finished)
        b.failed.connect(self._on_failed)
        b.cancelled.connect(self._on_cancelled)
        b.thumbnail.connect(self._on_thumbnail)
        b.preview.connect(self._on_preview)

    # -- adding images ----------------------------------------------------------------------------
    def add_paths(self, paths) -> list[QueueItem]:
        """Queue images (folders are walked) and open .shvc files; returns the new queue items."""
        paths = [Path(p) for p in paths]
        shvc = [p for p in paths if p.suffix.lower() == ".shvc" and p.is_file()]
        for p in shvc:
            self.open_shvc(p)
        added, skipped = [], 0
        for p in walk([p for p in paths if p not in shvc], image_io.READ_SUFFIXES):
            if p.suffix.lower() == ".shvc":
                continue
            if not p.is_file():
                skipped += 1
                continue
            if self.queue.has_source(p):
                continue
            item = QueueItem(p, original_bytes=p.stat().st_size)
            self.queue.add(item)
            self.workers.thumbnail(item.id, p)
            added.append(item)
        if added:
            self.settings.last_folder = str(added[-1].src.parent)
            self.status.setText(f"Added {len(added)} image{'s' * (len(added) != 1)}."
                                + (f" {skipped} path(s) could not be found." if skipped else ""))
            if self.settings.auto_start:
                self.start()
        elif skipped:
            self.status.setText(f"{skipped} path(s) could not be found.")
        return added

    def open_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Add images or open .shvc files",
                                                self.settings.last_folder, IMAGE_FILTER)
        if names:
            self.add_paths(names)

    def open_folder_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Add every image in a folder", self.settings.last_folder)
        if d:
            self.add_paths([d])

    def paste(self) -> None:
        md = QGuiApplication.clipboard().mimeData()
        if md is not None and md.hasUrls():
            self.add_paths([u.toLocalFile() for u in md.urls() if u.isLocalFile()])
            return
        img = QGuiApplication.clipboard().image()
        if img.isNull():
            self.status.setText("The clipboard holds no image and no files.")
            return
        folder = self.settings.output_dir or Path.home() / "Pictures"
        folder = folder if folder.is_dir() else Path.home()
        path = dialogs.free_name(folder / time.strftime("pasted-%Y%m%d-%H%M%S.png"))
        if not img.save(str(path), "PNG"):
            self.error_dialog = dialogs.show_error(self, "Cannot paste", f"The pasted image cannot be saved in {folder}.")
            return
        self.add_paths([path])

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self.drop_zone.set_active(True)

    def dragLeaveEvent(self, event) -> None:
        self.drop_zone.set_active(False)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.drop_zone.set_active(False)
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.add_paths(urls)

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Submit every waiting image that is not submitted yet (asking before replacing files)."""
        waiting = [it for it in self.queue.items if it.status == WAITING and it.dst is None]
        if not waiting:
            return
        reserved = {it.dst for it in self.queue.items if it.dst is not None and it.active}
        existing = [it for it in waiting if codec.default_output(it.src, self.settings.output_dir).exists()]
        remembered = None
        for it in waiting:
            dst = codec.default_output(it.src, self.settings.output_dir)
            force = False
            if dst.exists():
                choice = remembered
                if choice is None:
                    choice, for_all = self.confirm_overwrite(dst, len(existing))
                    remembered = choice if for_all else None
                if choice == dialogs.SKIP:
                    it.status, it.message = SKIPPED, f"{dst.name} exists; skipped."
                    self.queue.changed(it.id)
                    continue
                if choice == dialogs.REPLACE:
                    force = True
            if not force:                                # keep both, or two sources named alike in one batch
                dst = dialogs.free_name(dst, reserved)
            reserved.add(dst)
            it.dst = dst
            req = CompressRequest(it.id, it.src, dst, force, self.settings.variant, self.settings.device,
                                  self.codecs(), JobControl(), skip_larger=self.settings.skip_larger)
            if self._paused:
                req.control.pause()
            self.workers.compress(req)
        if self._started_at is None:
            self._started_at = time.monotonic()
        self._update_overall()
        self._update_actions()

    def confirm_overwrite(self, path: Path, count: int) -> tuple[str, bool]:
        return dialogs.ask_overwrite(self, path, count)

    def toggle_pause(self) -> None:
        self._set_paused(not self._paused)
        self.status.setText("Paused: Ctrl+P resumes, Esc cancels." if self._paused else "Resumed.")

    def _set_paused(self, paused: bool) -> None:
        """Pause or resume the jobs; the Pause action turns into Resume and back."""
        self._paused = paused
        self._pause_look(paused)
        self.workers.set_paused(paused)
        for it in self.queue.items:
            if it.status in (RUNNING, PAUSED):
                it.status = PAUSED if paused else RUNNING
                self.queue.changed(it.id)
        self._update_actions()

    def _pause_look(self, paused: bool) -> None:
        self.act_pause.setChecked(paused)
        self.act_pause.setText("Res&ume" if paused else "P&ause")
        self.act_pause.setIcon(self.style().standardIcon(QStyle.SP_MediaPlay if paused else QStyle.SP_MediaPause))
        self.act_pause.setToolTip("Resume the paused job" if paused else "Pause the running job")

    def cancel(self) -> None:
        """Stop every submitted job, paused ones included: they end as cancelled, never resumed."""
        if not any(it.active and it.dst is not None for it in self.queue.items):
            return
        self.workers.cancel_all()                  # a paused job wakes up only to see the cancel
        self._paused = False
        self._pause_look(False)
        for it in self.queue.items:
            if it.status in (RUNNING, PAUSED):
                it.status, it.stage = RUNNING, "cancelling"
                self.queue.changed(it.id)
        self._update_actions()
        self.status.setText("Cancelling…")

    def retry_selected(self) -> None:
        """Queue the selected finished-but-not-compressed images again (failed, cancelled, skipped,
        kept), and start them when images start by themselves."""
        again = [it for it in self._selected_items() if it.status in RETRYABLE]
        for it in again:
            it.reset()
            self.queue.changed(it.id)
        if again:
            self.status.setText(f"{len(again)} image{'s' * (len(again) != 1)} queued again.")
            if self.settings.auto_start:
                self.start()
        self._update_actions()

    def remove_selected(self) -> None:
        rows = [r for r in self.queue_view.selected_rows() if not self.queue.is_total(r)]
        for row in rows:
            it = self.queue.items[row]
            ctl = self.workers.controls.get(it.id)
            if ctl is not None:
                ctl.stop()
        self.queue.remove_rows(rows)
        self._refresh_chart()

    def clear_finished(self) -> None:
        self.queue.remove_rows([i for i, it in enumerate(self.queue.items) if not it.active])
        self._refresh_chart()

    # -- worker signals ---------------------------------------------------------------------------
    def _item(self, item_id: int) -> QueueItem | None:
        return self.queue.item(item_id)

    def _on_started(self, item_id: int) -> None:
        it = self._item(item_id)
        if it:
            it.status, it.stage, it.fraction = (PAUSED if self._paused else RUNNING), "reading", 0.0
            self.queue.changed(item_id)
            self.queue_view.scroll_to_row(self.queue.row_of(item_id))
            self.status.setText(f"Compressing {it.src.name}…")

    def _on_progress(self, item_id: int, stage: str, fraction: float, message: str) -> None:
        it = self._item(item_id)
        if it and it.status in (RUNNING, PAUSED) and it.stage != "cancelling":
            it.stage, it.fraction = stage, fraction
            self.queue.changed(item_id)
            self._update_overall()

    def _on_compressed(self, item_id: int, result) -> None:
        it = self._item(item_id)
        if it:
            it.result = result                      # result.dst None: kept the original
            it.width, it.height = result.width, result.height
            self.queue.changed(item_id)
            if self._selected_ids() == [item_id]:
                self._show_detail(it)

    def _on_baseline(self, item_id: int, r) -> None:
        it = self._item(item_id)
        if it:
            it.baselines[r.codec] = r
            self.queue.changed(item_id)

    def _on_finished(self, item_id: int) -> None:
        it = self._item(item_id)
        if it:
            it.status, it.fraction = DONE, 1.0
            if it.result is not None and it.result.dst is None:
                it.status, it.dst = KEPT, None
                it.message = f"Kept the original: no .shvc file was written. {it.size_note()}"
                self.status.setText(f"{it.src.name}: {it.message}")
            elif it.result is not None:
                it.dst = it.result.dst
                it.message = f"{it.result.bpd:.3f} bpd in {it.result.seconds:.1f} s → {it.dst}. {it.size_note()}"
            self.queue.changed(item_id)
        self._refresh_chart()
        self._job_maybe_over()

    def _on_failed(self, item_id: int, message: str) -> None:
        it = self._item(item_id)
        if it and it.status != DONE:
            it.status, it.message = FAILED, message
            self.queue.changed(item_id)
            self.status.setText(f"{it.src.name}: {message}")
        self._job_maybe_over()

    def _on_cancelled(self, item_id: int) -> None:
        it = self._item(item_id)
        if it:
            it.status, it.message = CANCELLED, "Cancelled; no file was written."
            if it.result is not None:           # the .shvc was complete before the comparisons stopped
                it.status = DONE if it.result.dst is not None else KEPT
                it.message = "Comparison codecs were cancelled."
            self.queue.changed(item_id)
        self._job_maybe_over()

    def _on_thumbnail(self, item_id: int, thumb, dims) -> None:
        it = self._item(item_id)
        if it:
            it.thumbnail = pixmap_of(thumb).scaled(THUMB_SHOWN, Qt.KeepAspectRatio, Qt.SmoothTransformation)
            it.width, it.height = dims
            self.queue.changed(item_id)

    def _job_maybe_over(self) -> None:
        self._update_overall()
        self._update_actions()
        if not any(it.active and it.dst is not None for it in self.queue.items):
            if self._paused:
                self._set_paused(False)
            t = self.queue.totals()
            if t["images"] and self._started_at is not None:
                change = t["change"]
                size = (f"{human_bytes(change.original)} → {human_bytes(change.new)} ({change.text()}), "
                        if change is not None else "")
                self.status.setText(f"Finished: {self.queue.progress_text()}, {size}"
                                    f"mean {t['bpd'].get('shvc', 0):.3f} bpd, "
                                    f"{time.monotonic() - self._started_at:.1f} s.")
            elif self._started_at is not None:
                self.status.setText(f"Stopped: {self.queue.progress_text()}.")
            self._started_at = None

    def _update_overall(self) -> None:
        """The status bar's progress: the same count as the total row, the running image's share added."""
        items = self.queue.items
        if not any(it.active and it.dst is not None for it in items):
            self.overall.hide()
            return
        done = sum(1.0 if not it.active else it.fraction * 0.9 for it in items)
        self.overall.setRange(0, 1000)
        self.overall.setValue(int(1000 * done / len(items)))
        self.overall.setFormat(self.queue.progress_text())
        self.overall.show()

    def _update_actions(self) -> None:
        running = any(it.active and it.dst is not None for it in self.queue.items)
        self.act_cancel.setEnabled(running)
        self.act_pause.setEnabled(running or self._paused)
        self.act_start.setEnabled(any(it.status == WAITING and it.dst is None for it in self.queue.items))
        sel = self._selected_items()
        self.act_remove.setEnabled(bool(sel))
        self.act_retry.setEnabled(any(it.status in RETRYABLE for it in sel))
        has_file = any(it.dst is not None and it.dst.exists() for it in sel)
        self.act_folder_open.setEnabled(has_file)
        self.act_open_result.setEnabled(has_file)

    def _queue_shape_changed(self, *_) -> None:
        self.pages.setCurrentWidget(self.split if self.queue.items else self.drop_zone)
        self._update_overall()
        self._update_actions()

    # -- selection, chart, detail -----------------------------------------------------------------
    def _selected_items(self) -> list[QueueItem]:
        return [self.queue.items[r] for r in self.queue_view.selected_rows() if not self.queue.is_total(r)]

    def _selected_ids(self) -> list[int]:
        return [it.id for it in self._selected_items()]

    def select_item(self, item_id: int) -> None:
        row = self.queue.row_of(item_id)
        if row >= 0:
            self.queue_view.select_row(row)

    def _selection_changed(self, *_) -> None:
        self._update_actions()
        self._refresh_chart()
        sel = self._selected_items()
        if len(sel) == 1:
            self._show_detail(sel[0])

    def _refresh_chart(self) -> None:
        sel = [it for it in self._selected_items() if it.result is not None]
        done = [it for it in self.queue.items if it.result is not None]
        shown = sel or done
        groups = [(it.src.name, self._chart_values(it)) for it in shown]
        t = self.queue.totals()
        if len(done) > 1 and t["bpd"]:
            groups.append((f"All {len(done)} images", {c: t["bpd"].get(c) for c in ("shvc",) + self.codecs()}))
        self.chart.set_groups(groups)

    def _chart_values(self, it: QueueItem) -> dict:
        vals = it.bpd()
        return {c: vals.get(c) for c in ("shvc",) + self.codecs()}

    def _show_detail(self, it: QueueItem) -> None:
        self._preview_for = it.id
        self.detail_label.setText(f"<b>{it.src.name}</b> — loading…")
        self.workers.preview(it.id, it.src)

    def _on_preview(self, item_id: int, arr) -> None:
        it = self._item(item_id)
        if it is None or item_id != self._preview_for:
            return
        r = it.result
        bits = r.bits_map if r is not None else None
        self.detail.set_images(arr, bits)
        name = f"<b>{it.src.name}</b> — {it.width} × {it.height}"
        if r is None:
            self.detail_label.setText(f"{name}, not compressed yet.")
        elif bits is None:
            self.detail_label.setText(f"{name}: {r.bpd:.3f} bits per dimension (bpd), {human_bytes(r.n_bytes)} "
                                      f"({it.size_change().text()}).")
        else:
            self.detail_label.setText(
                f"{name}: {r.bpd:.3f} bits per dimension (bpd), {human_bytes(r.n_bytes)} "
                f"({it.size_change().text()}). Right: the bpd the model spends on each pixel, on the "
                "same 0–8 scale for every image (8 = uncompressed). Wheel to zoom, drag to pan.")

    def _hovered(self, x: int, y: int, bits: float) -> None:
        self.status.setText(f"x {x}, y {y}: {bits:.2f} bpd" if bits == bits else f"x {x}, y {y}")

    def _context_menu(self, pos) -> None:
        if not self._selected_items():
            return
        menu = QMenu(self)
        for a in (self.act_open_result, self.act_folder_open, None, self.act_retry, self.act_remove):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # -- files ------------------------------------------------------------------------------------
    def open_containing_folder(self) -> None:
        for it in self._selected_items():
            if it.dst is not None and it.dst.exists():
                QDesktopServices.openUrl(QUrl.fromLocalFile(str(it.dst.parent)))
                return

    def open_selected_result(self) -> None:
        for it in self._selected_items():
            if it.dst is not None and it.dst.exists():
                self.open_shvc(it.dst)

    def open_shvc(self, path: Path) -> ShvcViewer:
        viewer = ShvcViewer(Path(path), self.workers, self)
        viewer.setWindowFlag(Qt.Window, True)
        if viewer.header is None:                  # not a readable .shvc: the viewer showed why
            self.error_dialog = viewer.error_dialog
            return viewer
        self.viewers.append(viewer)
        viewer.destroyed.connect(lambda *_, v=viewer: self.viewers.remove(v) if v in self.viewers else None)
        viewer.failed.connect(lambda msg, v=viewer: setattr(self, "error_dialog", v.error_dialog))
        viewer.show()
        return viewer

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec():
            self.device_label.setText(self._device_text())
            self._show_codec_columns()
            self._refresh_chart()

    def about(self) -> None:
        QMessageBox.about(self, "About SHVC", ABOUT.format(version=__version__))

    def resizeEvent(self, event) -> None:
        """Toolbar buttons lose their words when the window is too narrow for all of them."""
        super().resizeEvent(event)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon if self.width() >= TOOLBAR_TEXT_W
                                        else Qt.ToolButtonIconOnly)

    def closeEvent(self, event) -> None:
        if any(it.active and it.dst is not None for it in self.queue.items):
            answer = QMessageBox.question(self, "Quit", "Images are still being compressed. Stop and quit? "
                                          "(No half-written file is left.)")
            if answer != QMessageBox.Yes:
                event.ignore()
                return
        self.settings.store.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.workers.shutdown()
        for v in list(self.viewers):
            v.close()
        super().closeEvent(event)


TITLE = "Lossless image compression"
THUMB_SHOWN = QSize(72, 48)        # thumbnails in the queue: at most this size
TOOLBAR_TEXT_W = 1000              # narrower windows get an icons-only toolbar
ABOUT = """<h3>SHVC image compressor {version}</h3>
<p>Lossless image compression with a learned model: Split Hierarchical Variational Compression
(Ryder et al., CVPR 2022) coded with bits-back ANS (Townsend et al., ICLR 2019). Every .shvc file
decodes to the exact original pixels and metadata; a checksum proves it.</p>
<p><b>BPD</b> (bits per dimension): file bits divided by the number of samples (width × height ×
channels). Lower is better; 8 is an uncompressed 8-bit image.</p>
<p><b>Initial bits</b>: bits-back coding borrows bits at the start of a file that it can never pay back;
they are counted in the file size (the cell's tooltip gives their share of the file; a narrow window
hides the column and the BPD tooltip gives them).</p>
<p><b>vs original</b>: the .shvc file's size against the original file, "saved" in green or "grew by"
in red. Settings ▸ "Keep the original when the .shvc file would be larger" writes no file then; the
row's tooltip says which codec would have been smallest.</p>
<p><b>Comparison</b>: PNG (optimised), WebP lossless (method 6), JPEG-XL lossless (effort 7) and FLIF (when
a <tt>flif</tt> program is installed; otherwise it is not shown); the best codec of each row is
highlighted.</p>
<p><b>Keys</b>: Ctrl+O open, Ctrl+V paste, Ctrl+Return compress, Ctrl+P pause and resume, Esc cancel
(also while paused), Ctrl+R retry, Delete remove, F1 this help.</p>"""
