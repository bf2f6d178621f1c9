"""shvc-gui: lossless image compression with Split Hierarchical Variational Compression."""

__version__ = "0.1.0"
