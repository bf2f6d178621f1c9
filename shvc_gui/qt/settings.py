"""User settings (QSettings) and the Settings dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from ..core import baselines
from .queue_model import COMPARISON

DEVICES = {"auto": "Automatic (GPU when available)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
VARIANTS = {"": "Shipped default", "det": "Deterministic SHVC", "arib": "SHVC with ArIB", "shvc": "Plain SHVC"}


class Settings:
    """Typed access to the persisted settings. ``store``: a QSettings (tests give an INI file)."""

    def __init__(self, store: QSettings | None = None):
        self.store = store if store is not None else QSettings()

    def _get(self, key: str, default):
        v = self.store.value(key, default)
        if isinstance(default, bool):
            return v in (True, "true", "1", 1)
        return v if v is not None else default

    @property
    def output_dir(self) -> Path | None:
        v = self._get("output_dir", "")
        return Path(v) if v else None

    @output_dir.setter
    def output_dir(self, p: Path | None) -> None:
        self.store.setValue("output_dir", str(p) if p else "")

    @property
    def device(self) -> str:
        v = self._get("device", "auto")
        return v if v in DEVICES else "auto"

    @device.setter
    def device(self, v: str) -> None:
        self.store.setValue("device", v)

    @property
    def variant(self) -> str | None:
        v = self._get("variant", "")
        return v if v in VARIANTS and v else None

    @variant.setter
    def variant(self, v: str | None) -> None:
        self.store.setValue("variant", v or "")

    @property
    def codecs(self) -> tuple[str, ...]:
        v = self._get("codecs", ",".join(COMPARISON))
        return tuple(c for c in str(v).split(",") if c in COMPARISON)

    @codecs.setter
    def codecs(self, v) -> None:
        self.store.setValue("codecs", ",".join(c for c in COMPARISON if c in v))

    @property
    def auto_start(self) -> bool:
        return self._get("auto_start", True)

    @auto_start.setter
    def auto_start(self, v: bool) -> None:
        self.store.setValue("auto_start", bool(v))

    @property
    def skip_larger(self) -> bool:
        """Keep the original (write no .shvc file) when the .shvc file would not be smaller."""
        return self._get("skip_larger", False)

    @skip_larger.setter
    def skip_larger(self, v: bool) -> None:
        self.store.setValue("skip_larger", bool(v))

    @property
    def last_folder(self) -> str:
        return str(self._get("last_folder", ""))

    @last_folder.setter
    def last_folder(self, v: str) -> None:
        self.store.setValue("last_folder", v)

    def sync(self) -> None:
        self.store.sync()


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout()

        self.out_edit = QLineEdit(str(settings.output_dir or ""))
        self.out_edit.setPlaceholderText("Next to each original")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        form.addRow("Save .shvc files in", row)

        self.device = QComboBox()
        for k, label in DEVICES.items():
            self.device.addItem(label, k)
        self.device.setCurrentIndex(list(DEVICES).index(settings.device))
        form.addRow("Device", self.device)

        self.variant = QComboBox()
        for k, label in VARIANTS.items():
            self.variant.addItem(label, k)
        self.variant.setCurrentIndex(list(VARIANTS).index(settings.variant or ""))
        form.addRow("Model variant", self.variant)

        self.codec_boxes = {}
        boxes = QHBoxLayout()
        for c in COMPARISON:
            cb = QCheckBox(baselines.LABELS[c])
            cb.setChecked(c in settings.codecs and baselines.available(c))
            if not baselines.available(c):
                cb.setEnabled(False)
                cb.setToolTip(f"Not installed (no {c} program on PATH); its column stays hidden.")
            self.codec_boxes[c] = cb
            boxes.addWidget(cb)
        form.addRow("Compare with", boxes)

        self.skip_larger = QCheckBox("Keep the original when the .shvc file would be larger")
        self.skip_larger.setToolTip("No .shvc file is written for such an image; its row says how much it "
                                    "would have grown and which codec would have been smallest.")
        self.skip_larger.setChecked(settings.skip_larger)
        form.addRow("", self.skip_larger)

        self.auto_start = QCheckBox("Start compressing as soon as images are added")
        self.auto_start.setChecked(settings.auto_start)
        form.addRow("", self.auto_start)

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Save .shvc files in", self.out_edit.text())
        if d:
            self.out_edit.setText(d)

    def accept(self) -> None:
        s = self.settings
        text = self.out_edit.text().strip()
        s.output_dir = Path(text) if text else None
        s.device = self.device.currentData()
        s.variant = self.variant.currentData() or None
        # a codec that is not installed keeps its setting, for when it is
        s.codecs = [c for c, cb in self.codec_boxes.items()
                    if cb.isChecked() or (not cb.isEnabled() and c in s.codecs)]
        s.skip_larger = self.skip_larger.isChecked()
        s.auto_start = self.auto_start.isChecked()
        s.sync()
        super().accept()
