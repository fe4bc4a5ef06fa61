"""Client of the skopeo image-proxy wire, for `layerpipe` and `skopeo experimental-image-proxy`."""

from .blobs import BlobReader
from .errors import ProxyError, ProxyExitError, UnsupportedMethodError
from .proxy import ImageProxy, OpenedImage

__all__ = [
    "BlobReader",
    "ImageProxy",
    "OpenedImage",
    "ProxyError",
    "ProxyExitError",
    "UnsupportedMethodError",
]
__version__ = "0.1.0"
