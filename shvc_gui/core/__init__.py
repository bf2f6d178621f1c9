"""Everything that is not UI. Never imports PySide6 or qasync."""
