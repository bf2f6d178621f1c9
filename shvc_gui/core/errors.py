"""Errors that reach the user: each carries one clear sentence."""


class ShvcError(Exception):
    """Base class: str(err) is a complete sentence fit for a dialog or stderr."""


class FormatError(ShvcError):
    """A .shvc file is truncated, corrupt, foreign or of an unsupported version."""


class WeightsError(ShvcError):
    """Weights are missing, or their sha256 does not match the manifest."""


class ImageError(ShvcError):
    """An input image cannot be read, or is too large."""


class IntegrityError(ShvcError):
    """Decoded pixels do not match the checksum stored in the file."""


class Cancelled(ShvcError):
    """The user cancelled a running job."""
