"""Client of the skopeo image-proxy wire (0.2.x, the default) and of layerpipe's protocol 1.0 (JSON-RPC 2.0)."""

from .blobs import BlobReader
from .errors import ProxyError, ProxyExitError, RpcError, UnsupportedMethodError
from .proxy import ImageProxy, OpenedImage
from .proxy1 import ImageProxy1, Manifest, connect

__all__ = [
    "BlobReader",
    "ImageProxy",
    "ImageProxy1",
    "Manifest",
    "OpenedImage",
    "ProxyError",
    "ProxyExitError",
    "RpcError",
    "UnsupportedMethodError",
    "connect",
]
__version__ = "0.1.0"
