"""What the empty window shows: one large drop zone (a dashed frame that lights up while files are
dragged over the window) with the two buttons a first-time user needs."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

TEXT = ("<h2>Drop images or folders anywhere in this window</h2>"
        "<p>Each image is compressed losslessly into a .shvc file beside it and compared with PNG, WebP "
        "and JPEG-XL.<br>Drop a .shvc file to open it. Ctrl+V pastes an image.</p>")


class DropZone(QWidget):
    def __init__(self, open_files, open_folder, parent: QWidget | None = None):
        super().__init__(parent)
        self.active = False
        self.label = QLabel(TEXT)
        self.label.setAlignment(Qt.AlignCenter)
        self.label.setWordWrap(True)
        self.button_files = QPushButton("Choose images…")
        self.button_files.clicked.connect(open_files)
        self.button_folder = QPushButton("Choose a folder…")
        self.button_folder.clicked.connect(open_folder)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.button_files)
        buttons.addWidget(self.button_folder)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 40, 40, 40)
        layout.addStretch(1)
        layout.addWidget(self.label)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def set_active(self, active: bool) -> None:
        """Highlighted while files are dragged over the window."""
        self.active = active
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        colour = QColor(pal.color(QPalette.Highlight if self.active else QPalette.PlaceholderText))
        if self.active:
            fill = QColor(colour)
            fill.setAlpha(30)
            p.setBrush(fill)
        pen = QPen(colour, 2.5 if self.active else 2.0, Qt.DashLine)
        p.setPen(pen)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(14, 14, -14, -14), 14, 14)
