"""ImageProxy: a client of `skopeo experimental-image-proxy` and of layerpipe."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import wire
from .blobs import BlobReader, piped_blob, raw_blob, read_pipe_to_end
from .errors import OTHER, ProxyError, ProxyExitError, UnsupportedMethodError
from .process import EXIT_GRACE_SECONDS, ProxyExitTimeout, ProxyProcess


class OpenedImage(NamedTuple):
    """An image opened by the proxy; pass it back to the other methods."""

    id: int
    ref: str


ImageHandle = Union[OpenedImage, int]


def _image_id(image: ImageHandle) -> int:
    image_id = image.id if isinstance(image, OpenedImage) else image
    if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id <= 0:
        raise ValueError(f"not an opened image: {image!r}")
    return image_id


class ImageProxy:
    """Runs `COMMAND experimental-image-proxy [--sockfd N] ARGS...` and talks to it.

    Use as a context manager (or call start() and close()). All methods may be
    called from several threads: each request and its reply happen under one lock,
    and blob data flows through pipes that need no lock, so several blobs can be
    read at once.

    die_with_parent: the proxy gets SIGTERM when the *thread* that started it ends
    (that is how PR_SET_PDEATHSIG works), so start it from a long-lived thread or
    pass False.

    stall_seconds: a GetBlob read that waits this long for data sends FinishPipe
    early so that a copy that died half-way ends the read instead of hanging it;
    None waits forever.
    """

    def __new__(cls, *args: Any, protocol: str = "0.2", **kwargs: Any) -> Any:
        """protocol="1.0" makes a proxy1.ImageProxy1 (JSON-RPC 2.0; its keywords: wire,
        payloads, window); "0.2" (the default) this class, for skopeo and layerpipe alike."""
        if protocol == "1.0":
            from .proxy1 import ImageProxy1

            return ImageProxy1(*args, **kwargs)
        if protocol != "0.2":
            raise ValueError(f"protocol must be \"0.2\" or \"1.0\", not {protocol!r}")
        return super().__new__(cls)

    def __init__(
        self,
        command: Union[str, Sequence[str], None] = None,
        args: Sequence[str] = (),
        *,
        protocol: str = "0.2",
        sockfd: Optional[int] = None,
        die_with_parent: bool = True,
        capture_stderr: bool = True,
        shutdown_timeout: Optional[float] = 30.0,
        stall_seconds: Optional[float] = 5.0,
    ) -> None:
        if command is None:
            command = ["layerpipe"]
        elif isinstance(command, str):
            command = [command]
        if not command:
            raise ValueError("command must name a program")
        self.argv: List[str] = [*command, "experimental-image-proxy"]
        if sockfd is not None:
            self.argv += ["--sockfd", str(sockfd)]
        self.argv += list(args)
        self._sockfd = sockfd
        self._die_with_parent = die_with_parent
        self._capture_stderr = capture_stderr
        self._shutdown_timeout = shutdown_timeout
        self._stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._process: Optional[ProxyProcess] = None
        self._closed = False
        self._version: Optional[Tuple[int, int, int]] = None
        self.protocol_version: Optional[str] = None

    # -- lifetime ------------------------------------------------------------

    def __enter__(self) -> "ImageProxy":
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
        if self._process is not None:
            raise ProxyError("proxy already started")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = ProxyProcess(
                self.argv, theirs.fileno(), self._sockfd, self._die_with_parent, self._capture_stderr
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        try:
            version = self._call("Initialize", [])[0]
            if not isinstance(version, str):
                raise ProxyError(f"Initialize answered {version!r}, not a version string")
            self._version = wire.check_version(version)
            self.protocol_version = version
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        """Tears down after a failed start: no Shutdown, no exit-status check."""
        self._closed = True
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None and self._process.popen.poll() is None:
            self._process.popen.kill()
            self._process.popen.wait()

    def close(self) -> None:
        """Sends Shutdown, closes the socket and waits for the proxy to exit.

        Raises ProxyExitError (with the proxy's stderr) if it exits non-zero or
        does not exit within shutdown_timeout seconds.
        """
        if self._closed or self._process is None:
            self._closed = True
            return
        self._closed = True
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                wire.send_request(sock, "Shutdown", [])
            except (OSError, ProxyError):
                pass  # already gone: its exit status tells why
            sock.close()
        process = self._process
        try:
            process.wait(self._shutdown_timeout)
        except ProxyExitTimeout as e:
            raise ProxyExitError(f"proxy {process.argv[0]} {e}", None, process.stderr_text()) from None
        if process.popen.returncode != 0:
            raise ProxyExitError(
                f"proxy {process.argv[0]} {process.exit_description()}",
                process.popen.returncode,
                process.stderr_text(),
            )

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> Optional[int]:
        return self._process.popen.returncode if self._process is not None else None

    def __del__(self) -> None:
        # Closing the socket makes the proxy exit; no requests from a finaliser.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    # -- requests ------------------------------------------------------------

    def supports(self, method: str) -> bool:
        """Whether the proxy's protocol version has `method`."""
        spec = wire.METHODS[method]
        return self._version is not None and self._version >= spec.since

    def _require(self, method: str) -> wire.MethodSpec:
        spec = wire.METHODS[method]
        if self._version is not None and self._version < spec.since:
            raise UnsupportedMethodError(method, wire.format_version(spec.since), self.protocol_version or "?")
        return spec

    def _call(self, method: str, args: List[Any]) -> Tuple[Any, int, List[int]]:
        """One request and its reply; returns (value, pipeid, fds) after checking that
        the fds match what the method hands out."""
        spec = self._require(method)
        wire.check_args(method, spec, args)
        with self._lock:
            if self._sock is None:
                raise ProxyError(f"{method}: the proxy is closed")
            try:
                wire.send_request(self._sock, method, args)
                if spec.data == wire.NO_REPLY:
                    return None, 0, []
                reply, fds = wire.receive_reply(self._sock)
            except (EOFError, OSError) as e:
                raise self._gone_error(method, e) from None
        if not reply.success:
            wire.close_fds(fds)
            raise ProxyError(f"{method}: {reply.error}", reply.error_code or OTHER)
        expected = wire.FDS_FOR[spec.data]
        pipeid_ok = (reply.pipeid != 0) == (spec.data == wire.PIPE)
        if len(fds) != expected or not pipeid_ok:
            wire.close_fds(fds)
            raise ProxyError(
                f"{method}: protocol error: reply has pipeid {reply.pipeid} and {len(fds)} fds, "
                f"expected {expected} fds and {'a' if spec.data == wire.PIPE else 'no'} pipeid"
            )
        return reply.value, reply.pipeid, fds

    def _gone_error(self, method: str, cause: BaseException) -> ProxyError:
        process = self._process
        if process is None:
            return ProxyError(f"{method}: {cause}")
        return process.lost_error(f"{method}: lost the proxy ({cause})")

    def _finish_pipe(self, pipeid: int) -> None:
        self._call("FinishPipe", [pipeid])

    def _call_for_bytes(self, method: str, args: List[Any]) -> Tuple[Any, bytes]:
        """A single-pipe method whose data length is unknown: drain the pipe in a
        helper thread while FinishPipe waits for the copy to end."""
        value, pipeid, fds = self._call(method, args)
        chunks: List[bytes] = []
        reader = threading.Thread(target=read_pipe_to_end, args=(fds[0], chunks), name="layerpipe-read-pipe", daemon=True)
        reader.start()
        try:
            self._finish_pipe(pipeid)
        except BaseException:
            reader.join(timeout=EXIT_GRACE_SECONDS)
            raise
        reader.join()
        return value, b"".join(chunks)

    def _call_for_json(self, method: str, args: List[Any]) -> Any:
        _, data = self._call_for_bytes(method, args)
        try:
            return json.loads(data)
        except ValueError as e:
            raise ProxyError(f"{method}: the proxy sent invalid JSON: {e}") from None

    # -- methods -------------------------------------------------------------

    def open_image(self, ref: str) -> OpenedImage:
        """Opens `TRANSPORT:REFERENCE` (docker://…, oci:DIR[:REF], dir:DIR, …)."""
        value = self._call("OpenImage", [ref])[0]
        if not isinstance(value, int) or value <= 0:
            raise ProxyError(f"OpenImage answered {value!r}, not an image id")
        return OpenedImage(value, ref)

    def open_image_optional(self, ref: str) -> Optional[OpenedImage]:
        """Like open_image, but None when the image does not exist (needs 0.2.4)."""
        value = self._call("OpenImageOptional", [ref])[0]
        if not isinstance(value, int) or value < 0:
            raise ProxyError(f"OpenImageOptional answered {value!r}, not an image id")
        return None if value == wire.SENTINEL_IMAGE_ID else OpenedImage(value, ref)

    def close_image(self, image: ImageHandle) -> None:
        self._call("CloseImage", [_image_id(image)])

    def get_manifest(self, image: ImageHandle) -> Tuple[str, bytes]:
        """The manifest as OCI JSON, and the digest of the manifest as stored."""
        digest, data = self._call_for_bytes("GetManifest", [_image_id(image)])
        if not isinstance(digest, str):
            raise ProxyError(f"GetManifest answered {digest!r}, not a digest")
        return digest, data

    def get_full_config(self, image: ImageHandle) -> Dict[str, Any]:
        """The OCI image configuration."""
        return self._call_for_json("GetFullConfig", [_image_id(image)])

    def get_config(self, image: ImageHandle) -> Dict[str, Any]:
        """Only the `config` member of the image configuration."""
        return self._call_for_json("GetConfig", [_image_id(image)])

    def get_layer_info(self, image: ImageHandle) -> List[Dict[str, Any]]:
        """The layers to fetch: [{"digest", "size", "media_type"}, …] (needs 0.2.5)."""
        image_id = _image_id(image)
        if self.supports("GetLayerInfoPiped"):
            layers = self._call_for_json("GetLayerInfoPiped", [image_id])
        else:
            layers = self._call("GetLayerInfo", [image_id])[0]
        if not isinstance(layers, list):
            raise ProxyError(f"layer info is {type(layers).__name__}, not a list")
        return layers

    def get_blob(self, image: ImageHandle, digest: str, size: int) -> BlobReader:
        """A binary file of the blob, verified by the proxy against digest and size.

        Read it inside a `with` block: leaving the block ends the transfer
        (FinishPipe) and raises ProxyError if the blob failed verification.
        """
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"blob size must be a non-negative int, not {size!r}")
        value, pipeid, fds = self._call("GetBlob", [_image_id(image), digest, size])
        # Read what the proxy will copy (the source's size when it knows it), so that
        # FinishPipe reports a size mismatch instead of waiting on a full pipe.
        announced = value if isinstance(value, int) and value >= 0 else size
        return piped_blob(fds[0], pipeid, digest, announced, self._finish_pipe, self._stall_seconds)

    def get_raw_blob(self, image: ImageHandle, digest: str) -> BlobReader:
        """A binary file of the blob as stored, unverified: check its digest yourself.

        Reading to EOF (or closing after it) raises ProxyError if the proxy reports
        a failed copy. No FinishPipe, so raw blobs never hold the request lock (needs 0.2.8).
        """
        value, _, fds = self._call("GetRawBlob", [_image_id(image), digest])
        announced = value if isinstance(value, int) else -1
        return raw_blob(fds[0], fds[1], digest, announced)
