"""Protocol 1.0 transfers as readable files, whatever the payload kind.

Right after GetBlob/GetRawBlob answers, FinishTransfer is sent and left pending: it waits
only for its own transfer, so it blocks nothing, and the server closes the fd or FIFO once
the transfer has ended, which ends our reads. At end of file the reader takes FinishTransfer's
answer and raises its error (short blob, digest mismatch). Closing before the end sends
CancelTransfer, which stops the source and frees the transfer on the server.

`stream` payloads arrive as `transfer/data` notifications, which the connection's reader
thread appends to a StreamState. The consumer grants credit (`transfer/credit`) for what it
has read, so no more than the window is ever buffered here, however slow the consumer.
"""

from __future__ import annotations

import base64
import binascii
import collections
import io
import os
import select
import threading
from typing import Any, Callable, Deque, Dict, Optional

from .connection import PendingCall
from .errors import OTHER, ProxyError, RpcError

# How often a FIFO reader that has no writer yet checks whether the transfer ended without one.
FIFO_WAIT_SECONDS = 0.2

ProgressCallback = Callable[[int, int], None]
SendCredit = Callable[[int, int], None]


class _TransferRaw(io.RawIOBase):
    """What every payload kind shares: the pending FinishTransfer, the end, cancel on early close."""

    def __init__(self, transfer: int, size: int, description: str, finish: PendingCall, cancel: Callable[[int], None]) -> None:
        super().__init__()
        self.transfer = transfer
        self._announced = size
        self._received = 0
        self._description = description
        self._finish = finish
        self._cancel = cancel
        self._at_eof = False
        self._error: Optional[ProxyError] = None
        self._abandoned = False

    def readable(self) -> bool:
        return True

    def _outcome(self) -> Optional[ProxyError]:
        """FinishTransfer's answer, checked against the bytes that came."""
        try:
            self._finish.result()
        except RpcError as e:
            return RpcError(f"{self._description}: {e.message}", e.code, e.error_code, e.kind)
        except ProxyError as e:
            return ProxyError(f"{self._description}: {e.message}", e.error_code)
        if self._announced >= 0 and self._received != self._announced:
            return ProxyError(f"{self._description}: the server announced {self._announced} bytes and sent {self._received}", OTHER)
        return None

    def _reached_eof(self, error: Optional[ProxyError] = None) -> int:
        """Ends the reads with end of file, so that a buffered reader hands out every byte
        before it; the transfer's error is raised by the next read and by close()."""
        self._at_eof = True
        self._error = error if error is not None else self._outcome()
        return 0

    def abandon(self) -> None:
        """The caller is unwinding an exception: close() must not raise over it."""
        self._abandoned = True

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._release()
            if not self._at_eof:
                # Stopped early: the transfer is cancelled, which is not news to us.
                self._cancel(self.transfer)
            elif self._error is not None and not self._abandoned:
                raise self._error
        finally:
            super().close()

    def _release(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        # Never talk to the server from a finaliser (it may run in the reader thread, or
        # inside a send): let go of what is held here; the session's end frees the rest.
        try:
            self._release()
        except Exception:
            pass


class PipeTransferRaw(_TransferRaw):
    """`fd` (a pipe's read end) or `fifo` (a path we open) payloads."""

    def __init__(self, fd: int, is_fifo: bool, transfer: int, size: int, description: str, finish: PendingCall, cancel: Callable[[int], None]) -> None:
        super().__init__(transfer, size, description, finish, cancel)
        self._fd: Optional[int] = fd
        self._is_fifo = is_fifo
        # A FIFO reads 0 bytes both at its end and before any writer opened it; HUP tells them apart.
        self._writer_seen = not is_fifo
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("transfer is closed")
        return self._fd

    def readinto(self, buffer: Any) -> int:
        if self._fd is None:
            raise ValueError("read from a closed transfer")
        if self._error is not None:
            raise self._error
        if self._at_eof:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) == 0:
            return 0
        while True:
            try:
                got = os.readv(self._fd, [view])
            except BlockingIOError:
                got = -1
            if got > 0:
                self._received += got
                self._writer_seen = True
                return got
            if got == 0 and self._writer_seen:
                return self._reached_eof()
            if not self._wait() and self._finish.done():
                # The transfer ended and no writer ever opened the FIFO.
                return self._reached_eof()

    def _wait(self) -> bool:
        """Waits for data or a hang-up; False when a FIFO stayed silent for a while."""
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = poller.poll(FIFO_WAIT_SECONDS * 1000 if self._is_fifo else None)
        for _, mask in events:
            if mask & (select.POLLHUP | select.POLLERR):
                self._writer_seen = True
        return bool(events)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StreamState:
    """In-band bytes of one transfer, filled by the reader thread, drained by the consumer."""

    def __init__(self, transfer: int, window: int) -> None:
        self.transfer = transfer
        self.window = window
        self._cond = threading.Condition()
        self._chunks: Deque[memoryview] = collections.deque()
        self._buffered = 0
        self._ended = False
        self._error: Optional[ProxyError] = None
        self._discard = False
        self.high_water = 0

    def feed(self, data: Any) -> None:
        try:
            chunk = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except (binascii.Error, ValueError):
            chunk = None
        with self._cond:
            if self._discard or self._ended:
                return
            if chunk is None:
                self._fail(ProxyError(f"transfer {self.transfer}: transfer/data is not base64"))
                return
            self._chunks.append(memoryview(chunk))
            self._buffered += len(chunk)
            self.high_water = max(self.high_water, self._buffered)
            if self._buffered > self.window:
                self._fail(ProxyError(f"transfer {self.transfer}: the server sent {self._buffered} bytes past a {self.window}-byte window"))
            self._cond.notify_all()

    def end(self, error: Optional[ProxyError]) -> None:
        with self._cond:
            if not self._ended:
                self._ended = True
                self._error = error
            self._cond.notify_all()

    def _fail(self, error: ProxyError) -> None:
        self._ended = True
        self._error = error
        self._cond.notify_all()

    def take(self, view: memoryview) -> int:
        """Copies buffered bytes into `view`, waiting for some; 0 at the end. Raises the
        `transfer/end` error once every byte before it was taken."""
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if not self._chunks:
                if self._error is not None:
                    raise self._error
                return 0
            done = 0
            while self._chunks and done < len(view):
                chunk = self._chunks[0]
                n = min(len(chunk), len(view) - done)
                view[done : done + n] = chunk[:n]
                done += n
                if n == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[n:]
            self._buffered -= done
            return done

    def discard(self) -> None:
        with self._cond:
            self._discard = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()


class StreamTransferRaw(_TransferRaw):
    """`stream` payloads: reads take from the StreamState and grant the server credit."""

    def __init__(self, state: StreamState, send_credit: SendCredit, size: int, description: str, finish: PendingCall, cancel: Callable[[int], None], forget: Callable[[int], None]) -> None:
        super().__init__(state.transfer, size, description, finish, cancel)
        self._state = state
        self._send_credit = send_credit
        self._forget = forget
        self._ungranted = 0
        # Credit goes back in quarters of the window: few messages, and the server never starves.
        self._grant_at = max(1, state.window // 4)

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed transfer")
        if self._error is not None:
            raise self._error
        if self._at_eof:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) == 0:
            return 0
        try:
            got = self._state.take(view)
        except RpcError as e:
            return self._reached_eof(RpcError(f"{self._description}: {e.message}", e.code, e.error_code, e.kind))
        except ProxyError as e:
            return self._reached_eof(ProxyError(f"{self._description}: {e.message}", e.error_code))
        if got == 0:
            return self._reached_eof()
        self._received += got
        self._ungranted += got
        if self._ungranted >= self._grant_at:
            self._send_credit(self.transfer, self._ungranted)
            self._ungranted = 0
        return got

    def _release(self) -> None:
        self._state.discard()
        self._forget(self.transfer)


class TransferRouter:
    """Routes the server's transfer notifications to stream states and progress callbacks."""

    def __init__(self) -> None:
        # Reentrant: a blob's finaliser may forget its transfer while this thread holds it.
        self._lock = threading.RLock()
        self.streams: Dict[int, StreamState] = {}
        self.progress: Dict[int, ProgressCallback] = {}
        # Notifications for transfers nobody is reading any more (late data after a cancel).
        self.dropped = 0

    def add_stream(self, state: StreamState) -> None:
        with self._lock:
            self.streams[state.transfer] = state

    def add_progress(self, transfer: int, callback: ProgressCallback) -> None:
        with self._lock:
            self.progress[transfer] = callback

    def forget(self, transfer: int) -> None:
        with self._lock:
            self.streams.pop(transfer, None)
            self.progress.pop(transfer, None)

    def handle(self, method: str, params: Any) -> None:
        if not isinstance(params, dict) or not isinstance(params.get("transfer"), int):
            return
        transfer = params["transfer"]
        with self._lock:
            state = self.streams.get(transfer)
            callback = self.progress.get(transfer)
        if method == "transfer/data":
            if state is None:
                self.dropped += 1
            else:
                state.feed(params.get("data"))
        elif method == "transfer/end":
            error = params.get("error")
            if state is not None:
                state.end(None if error is None else RpcError.from_object(f"transfer {transfer}", error))
            with self._lock:
                self.progress.pop(transfer, None)
        elif method == "transfer/progress" and callback is not None:
            try:
                callback(int(params.get("bytes", 0)), int(params.get("total", -1)))
            except Exception:  # a caller's bug must not kill the reader thread
                pass

    def lose_all(self, error: ProxyError) -> None:
        with self._lock:
            states = list(self.streams.values())
        for state in states:
            state.end(error)
