"""ImageProxy1: the protocol 1.0 (JSON-RPC 2.0) client, with the 0.2.x client's method names.

Reached as `ImageProxy(..., protocol="1.0")` (a child on a SEQPACKET socketpair, or
`wire="stdio"` for `serve --stdio`) or as `connect("unix:PATH")` (a running `serve --listen`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

from . import jsonrpc
from .blobs import BlobReader
from .connection import PendingCall, RpcConnection
from .errors import ProxyError, UnsupportedMethodError
from .proxy import ImageHandle, OpenedImage, _image_id
from .session1 import Endpoint, open_endpoint, service_path
from .handout1 import TransferOpener
from .transfers import ProgressCallback, TransferRouter

PlatformSpec = Union[Mapping[str, str], str]


class _ManifestPair(NamedTuple):
    digest: str
    data: bytes


class Manifest(_ManifestPair):
    """(digest, bytes) as 0.2.x's get_manifest returns, plus `media_type`."""

    media_type: str


def _platform(value: PlatformSpec) -> Dict[str, str]:
    """{"os", "architecture", "variant"?} from a dict or from "os/arch[/variant]"."""
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {value!r} is not OS/ARCH[/VARIANT]")
        return dict(zip(("os", "architecture", "variant"), parts))
    return dict(value)


def _decode(method: str, result: Any, member: str) -> bytes:
    value = result.get(member) if isinstance(result, dict) else None
    if not isinstance(value, str):
        raise ProxyError(f"{method} answered without a base64 {member}: {str(result)[:200]}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProxyError(f"{method}: {member} is not base64: {e}") from None


def _json(method: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise ProxyError(f"{method}: the server sent invalid JSON: {e}") from None


class ImageProxy1:
    """A protocol 1.0 session. Every method may be called from any number of threads at
    once; each call waits only for its own answer. Use as a context manager (or start()/close())."""

    def __init__(
        self,
        command: Union[str, Sequence[str], None] = None,
        args: Sequence[str] = (),
        *,
        wire: str = "socketpair",
        address: Optional[str] = None,
        payloads: Optional[Sequence[str]] = None,
        window: Optional[int] = None,
        sockfd: Optional[int] = None,
        die_with_parent: bool = True,
        capture_stderr: bool = True,
        shutdown_timeout: Optional[float] = 30.0,
        stall_seconds: Optional[float] = None,
    ) -> None:
        # stall_seconds is accepted so that 0.2.x code only adds protocol="1.0"; 1.0 needs no
        # stall guard (FinishTransfer is already pending, and a failed transfer ends the reads).
        del stall_seconds
        if wire not in ("socketpair", "stdio", "unix"):
            raise ValueError(f"wire must be socketpair, stdio or unix, not {wire!r}")
        if payloads is not None and not jsonrpc.KIND_CHECKS["payloads"](payloads):
            raise ValueError(f"payloads must be among {jsonrpc.PAYLOAD_KINDS}, not {payloads!r}")
        self._endpoint_options = dict(
            command=command, args=list(args), wire=wire, address=address, sockfd=sockfd,
            die_with_parent=die_with_parent, capture_stderr=capture_stderr,
        )
        self.wire = wire
        # fd needs a socket to ride on; stdio has none.
        default_payloads = ["fifo", "stream"] if wire == "stdio" else list(jsonrpc.PAYLOAD_KINDS)
        self._payloads = list(payloads) if payloads is not None else default_payloads
        self._window_asked = window
        self._shutdown_timeout = shutdown_timeout
        self._endpoint: Optional[Endpoint] = None
        self._connection: Optional[RpcConnection] = None
        self._router = TransferRouter()
        self._opener: Optional[TransferOpener] = None
        self._closed = False
        self.protocol_version: Optional[str] = None
        self.server: Dict[str, Any] = {}
        self.methods: List[str] = []
        self.payload: Optional[str] = None
        self.window = jsonrpc.DEFAULT_STREAM_WINDOW

    # -- lifetime ------------------------------------------------------------

    def __enter__(self) -> "ImageProxy1":
        # connect() hands out a started session, which `with` then only closes.
        if self._endpoint is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except ProxyError:
            pass  # the exception already unwinding says more

    def start(self) -> None:
        if self._endpoint is not None:
            raise ProxyError("proxy already started")
        self._endpoint = open_endpoint(**self._endpoint_options)  # type: ignore[arg-type]
        connection = RpcConnection(self._endpoint.channel, self._endpoint.describe_loss)
        connection.on_notification(self._router.handle)
        connection.on_loss(self._router.lose_all)
        self._connection = connection
        connection.start()
        try:
            params: Dict[str, Any] = {"protocolVersion": jsonrpc.PROTOCOL_VERSION, "payloads": self._payloads}
            if self._window_asked is not None:
                params["window"] = self._window_asked
            result = self._call("Initialize", params, timeout=self._shutdown_timeout)
            if not isinstance(result, dict):
                raise ProxyError(f"Initialize answered {result!r}")
            try:
                self.protocol_version = jsonrpc.check_version(result.get("protocolVersion"))
            except ValueError as e:
                raise ProxyError(str(e)) from None
            self.payload = result.get("payload")
            if self.payload not in self._payloads:
                raise ProxyError(f"Initialize chose payload {self.payload!r}, which this client did not offer ({self._payloads})")
            self.server = result.get("server") or {}
            self.methods = list(result.get("methods") or [])
            window = result.get("window")
            self.window = window if isinstance(window, int) and window > 0 else jsonrpc.DEFAULT_STREAM_WINDOW
            self._opener = TransferOpener(connection, self._router, self.payload, self.window)
        except BaseException:
            self._closed = True
            self._endpoint.abort(connection)
            raise

    def close(self) -> None:
        """Ends the session: Shutdown and the child's exit for a child (ProxyExitError if it
        exits non-zero), just the connection for the unix service."""
        if self._closed or self._endpoint is None or self._connection is None:
            self._closed = True
            return
        self._closed = True
        self._endpoint.finish(self._connection, self._shutdown_timeout)

    @property
    def pid(self) -> Optional[int]:
        return self._endpoint.pid if self._endpoint is not None else None

    @property
    def returncode(self) -> Optional[int]:
        return self._endpoint.returncode if self._endpoint is not None else None

    # -- requests ------------------------------------------------------------

    def supports(self, method: str) -> bool:
        """Whether the server announced `method` at Initialize."""
        return method in self.methods

    def request_async(self, method: str, params: Optional[Mapping[str, Any]] = None) -> PendingCall:
        """Any 1.0 request, checked against the method table; returns a PendingCall whose
        result() waits (and cancels on timeout) and whose cancel() sends $/cancelRequest.
        Transfer methods need get_blob/get_raw_blob, which read their bytes."""
        if method in jsonrpc.TRANSFER_METHODS:
            raise ValueError(f"use get_blob/get_raw_blob for {method}")
        return self._send(method, dict(params or {}))

    def request(self, method: str, params: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        return self.request_async(method, params).result(timeout)

    def _send(self, method: str, params: Dict[str, Any], hook=None, orphan=None) -> PendingCall:
        jsonrpc.check_params(method, params)
        if self.methods and method not in self.methods:
            error = UnsupportedMethodError(method, "1.0", self.protocol_version or "?")
            error.message = f"{method} is not among the methods this server announced at Initialize"
            error.args = (error.message,)
            raise error
        if self._connection is None or self._closed and method != "Shutdown":
            raise ProxyError(f"{method}: the proxy is closed")
        return self._connection.call_async(method, params, hook, orphan)

    def _call(self, method: str, params: Dict[str, Any], timeout: Optional[float] = None) -> Any:
        return self._send(method, params).result(timeout)

    # -- methods -------------------------------------------------------------

    def open_image(self, ref: str, *, timeout: Optional[float] = None) -> OpenedImage:
        """Opens `TRANSPORT:REFERENCE`. After `timeout` seconds the request is cancelled
        ($/cancelRequest: the server stops its network requests) and ProxyError raised."""
        image = self._open("OpenImage", ref, timeout)
        if image is None:
            raise ProxyError(f"OpenImage answered no image for {ref}")
        return image

    def open_image_optional(self, ref: str, *, timeout: Optional[float] = None) -> Optional[OpenedImage]:
        """Like open_image, but None when the image does not exist."""
        return self._open("OpenImageOptional", ref, timeout)

    def _open(self, method: str, ref: str, timeout: Optional[float]) -> Optional[OpenedImage]:
        def orphan(result: Any) -> None:
            # Opened after we gave up: close it so it does not live as long as the session.
            if isinstance(result, dict) and isinstance(result.get("image"), int):
                self._connection.call_async("CloseImage", {"image": result["image"]})  # type: ignore[union-attr]

        result = self._send(method, {"reference": ref}, orphan=orphan).result(timeout)
        image = result.get("image") if isinstance(result, dict) else "?"
        if image is None and method == "OpenImageOptional":
            return None
        if not isinstance(image, int) or isinstance(image, bool) or image <= 0:
            raise ProxyError(f"{method} answered {result!r}, not an image")
        return OpenedImage(image, ref)

    def close_image(self, image: ImageHandle) -> None:
        self._call("CloseImage", {"image": _image_id(image)})

    def get_manifest(self, image: ImageHandle, *, raw: bool = False, platform: Optional[PlatformSpec] = None, timeout: Optional[float] = None) -> Manifest:
        """(digest, bytes) of the manifest as 0.2.x gives it (the chosen instance, as OCI);
        raw=True: the manifest or index exactly as stored; platform: that instance of a list
        ({"os", "architecture", "variant"?} or "linux/arm64/v8"). `.media_type` says which."""
        params: Dict[str, Any] = {"image": _image_id(image)}
        if raw:
            params["raw"] = True
        if platform is not None:
            params["platform"] = _platform(platform)
        result = self._call("GetManifest", params, timeout)
        data = _decode("GetManifest", result, "data")
        digest, media_type = result.get("digest"), result.get("mediaType")
        if not isinstance(digest, str) or not isinstance(media_type, str):
            raise ProxyError(f"GetManifest answered no digest or mediaType: {str(result)[:200]}")
        manifest = Manifest(digest, data)
        manifest.media_type = media_type
        return manifest

    def list_instances(self, image: ImageHandle) -> List[Dict[str, Any]]:
        """[{"digest", "mediaType", "size", "platform"}] of a list; [] for a single image."""
        result = self._call("ListInstances", {"image": _image_id(image)})
        instances = result.get("instances") if isinstance(result, dict) else None
        if not isinstance(instances, list):
            raise ProxyError(f"ListInstances answered {str(result)[:200]}")
        return instances

    def list_tags(self, ref: str, *, timeout: Optional[float] = None) -> List[str]:
        """Tags of a repository (docker://HOST/REPO) or the ref names of an oci: layout."""
        result = self._call("ListTags", {"reference": ref}, timeout)
        tags = result.get("tags") if isinstance(result, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ProxyError(f"ListTags answered {str(result)[:200]}")
        return tags

    def get_full_config(self, image: ImageHandle) -> Dict[str, Any]:
        """The OCI image configuration."""
        return _json("GetFullConfig", _decode("GetFullConfig", self._call("GetFullConfig", {"image": _image_id(image)}), "data"))

    def get_config(self, image: ImageHandle) -> Dict[str, Any]:
        """Only the `config` member of the image configuration."""
        return _json("GetConfig", _decode("GetConfig", self._call("GetConfig", {"image": _image_id(image)}), "data"))

    def get_layer_info(self, image: ImageHandle) -> List[Dict[str, Any]]:
        """[{"digest", "size", "media_type"}], the shape 0.2.x's get_layer_info returns."""
        result = self._call("GetLayerInfo", {"image": _image_id(image)})
        layers = result.get("layers") if isinstance(result, dict) else None
        if not isinstance(layers, list) or not all(isinstance(l, dict) for l in layers):
            raise ProxyError(f"GetLayerInfo answered {str(result)[:200]}")
        return [{"digest": l.get("digest"), "size": l.get("size"), "media_type": l.get("mediaType")} for l in layers]

    def get_blob(self, image: ImageHandle, digest: str, size: Optional[int] = None, *, progress: Optional[ProgressCallback] = None) -> BlobReader:
        """A binary file of the blob, verified by the server for size and digest: reading
        to its end (or leaving its `with` block) raises ProxyError on a short or corrupted
        blob; every byte before the error is delivered. size None: the manifest's.
        progress(bytes, total) is called from the connection's reader thread (keep it short)."""
        params: Dict[str, Any] = {"image": _image_id(image), "digest": digest}
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"blob size must be a non-negative int, not {size!r}")
            params["size"] = size
        if progress is not None:
            params["progress"] = True
        return self._transfer("GetBlob", params, f"blob {digest}", progress, size)

    def get_raw_blob(self, image: ImageHandle, digest: str, *, offset: Optional[int] = None, length: Optional[int] = None) -> BlobReader:
        """A binary file of the blob as stored, unverified (check the digest yourself), or of
        `length` bytes from `offset` (a registry gets a Range request): to resume a blob."""
        params: Dict[str, Any] = {"image": _image_id(image), "digest": digest}
        if offset is not None:
            params["offset"] = offset
        if length is not None:
            params["length"] = length
        return self._transfer("GetRawBlob", params, f"raw blob {digest}", None, None)

    # -- transfers -----------------------------------------------------------

    def _transfer(self, method: str, params: Dict[str, Any], description: str, progress: Optional[ProgressCallback], asked_size: Optional[int]) -> BlobReader:
        opener = self._opener
        if opener is None:
            raise ProxyError(f"{method}: the proxy is not started")
        handout = self._send(method, params, hook=opener.hook(method, progress), orphan=opener.drop).result()
        return opener.reader(handout, params["digest"], description, asked_size)


def connect(address: str = "unix:", *, payloads: Optional[Sequence[str]] = None, window: Optional[int] = None) -> ImageProxy1:
    """A started 1.0 session with a running `layerpipe serve --listen`: "unix:PATH", or
    "unix:" for its default socket under $XDG_RUNTIME_DIR. Closing it (or leaving its `with`
    block) ends only this connection."""
    proxy = ImageProxy1(wire="unix", address=service_path(address), payloads=payloads, window=window)
    proxy.start()
    return proxy
