"""How a GetBlob/GetRawBlob answer becomes a readable file, whatever the session's payload
kind: the fd on the response, a FIFO path to open, or a stream of `transfer/data`.

The answer is read in the connection's reader thread (hook), so the stream and the progress
callback are routed before the transfer's first notification is read. Right after it,
FinishTransfer is sent and left pending (see transfers.py).
"""

from __future__ import annotations

import os
from typing import Any, List, NamedTuple, Optional

from . import jsonrpc
from .blobs import BlobReader
from .connection import PendingCall, ResultHook, RpcConnection
from .errors import ProxyError
from .framing import close_fds
from .transfers import PipeTransferRaw, ProgressCallback, StreamState, StreamTransferRaw, TransferRouter

# How long close() of a blob read only partly waits for CancelTransfer's answer.
CANCEL_TIMEOUT_SECONDS = 10.0


class Handout(NamedTuple):
    transfer: int
    size: int
    fd: Optional[int]
    path: Optional[str]
    state: Optional[StreamState]


class TransferOpener:
    def __init__(self, connection: RpcConnection, router: TransferRouter, payload: str, window: int) -> None:
        self._connection = connection
        self._router = router
        self._payload = payload
        self._window = window

    def hook(self, method: str, progress: Optional[ProgressCallback]) -> ResultHook:
        def on_result(result: Any, fds: List[int]) -> Handout:
            try:
                return self._handout(method, result, fds, progress)
            except ProxyError:
                if isinstance(result, dict) and isinstance(result.get("transfer"), int):
                    self._connection.call_async("CancelTransfer", {"transfer": result["transfer"]})
                raise

        return on_result

    def _handout(self, method: str, result: Any, fds: List[int], progress: Optional[ProgressCallback]) -> Handout:
        transfer = result.get("transfer") if isinstance(result, dict) else None
        size = result.get("size") if isinstance(result, dict) else None
        path = result.get("path") if isinstance(result, dict) else None
        wanted_fds = 1 if self._payload == jsonrpc.PAYLOAD_FD else 0
        problem = None
        if not isinstance(transfer, int) or not isinstance(size, int):
            problem = f"answered {str(result)[:200]}, not {{transfer, size}}"
        elif len(fds) != wanted_fds:
            problem = f"came with {len(fds)} fds on a {self._payload} session"
        elif self._payload == jsonrpc.PAYLOAD_FIFO and not isinstance(path, str):
            problem = "gave no FIFO path on a fifo session"
        if problem is not None:
            close_fds(fds)
            raise ProxyError(f"{method}: protocol error: the response {problem}")
        state = None
        if self._payload == jsonrpc.PAYLOAD_STREAM:
            state = StreamState(transfer, self._window)
            self._router.add_stream(state)
        if progress is not None:
            self._router.add_progress(transfer, progress)
        return Handout(transfer, size, fds[0] if fds else None, path, state)

    def drop(self, handout: Any) -> None:
        """A transfer answered after its caller gave up: close it here and on the server."""
        if isinstance(handout, Handout):
            if handout.fd is not None:
                close_fds([handout.fd])
            self._router.forget(handout.transfer)
            self._connection.call_async("CancelTransfer", {"transfer": handout.transfer})

    def reader(self, handout: Handout, digest: str, description: str, asked_size: Optional[int]) -> BlobReader:
        connection = self._connection
        finish = connection.call_async("FinishTransfer", {"transfer": handout.transfer})
        size = handout.size if handout.size >= 0 else (asked_size if asked_size is not None else -1)
        if handout.state is not None:
            def send_credit(transfer: int, n: int) -> None:
                connection.notify(jsonrpc.TRANSFER_CREDIT, {"transfer": transfer, "bytes": n})

            raw = StreamTransferRaw(handout.state, send_credit, handout.size, description, finish, self.cancel, self._router.forget)
        else:
            fd = handout.fd if handout.fd is not None else self._open_fifo(handout, finish, description)
            raw = PipeTransferRaw(fd, handout.fd is None, handout.transfer, handout.size, description, finish, self.cancel)
        return BlobReader(raw, digest, size)

    def _open_fifo(self, handout: Handout, finish: PendingCall, description: str) -> int:
        assert handout.path is not None
        try:
            # Non-blocking: a FIFO nobody writes yet must not hang the open.
            return os.open(handout.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            # The transfer may have ended (and removed its FIFO) already: its error says why.
            try:
                finish.result(CANCEL_TIMEOUT_SECONDS)
            except ProxyError as failed:
                raise ProxyError(f"{description}: {failed.message}", failed.error_code) from None
            raise ProxyError(f"{description}: cannot open the FIFO {handout.path}: {e}") from None

    def cancel(self, transfer: int) -> None:
        """CancelTransfer for a blob closed before its end; waits briefly for the answer."""
        self._router.forget(transfer)
        if self._connection.lost is not None:
            return
        try:
            self._connection.call("CancelTransfer", {"transfer": transfer}, timeout=CANCEL_TIMEOUT_SECONDS)
        except ProxyError:
            pass  # already ended or gone: either way nothing is left to free
