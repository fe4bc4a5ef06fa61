"""Readable files over the pipes the proxy hands out for blobs.

GetBlob: the proxy holds the pipe's write end open until FinishPipe, so reading to
EOF would wait forever. The reader therefore stops after the announced size, closes
its end, and only then sends FinishPipe, whose reply carries the verification result.
If the pipe stays silent for `stall_seconds` before that size is reached (the copy
died half-way, the source is shorter than announced, or the proxy dropped the tail
of a blob that failed verification), FinishPipe is sent from a
helper thread so that the proxy closes the write end and the read returns.

GetRawBlob: the data pipe closes by itself; the error pipe then tells whether the
copy failed.
"""

from __future__ import annotations

import io
import json
import os
import select
import threading
from typing import Callable, Optional

from .errors import OTHER, ProxyError

BUFFER_SIZE = 256 * 1024

FinishPipe = Callable[[int], None]


def _read_into(fd: int, view: memoryview) -> int:
    return os.readv(fd, [view])


class _PipedBlobRaw(io.RawIOBase):
    """Raw reader of a GetBlob pipe; close() sends FinishPipe (after closing the fd)."""

    def __init__(
        self,
        fd: int,
        pipeid: int,
        expected_size: int,
        description: str,
        finish_pipe: FinishPipe,
        stall_seconds: Optional[float],
    ) -> None:
        super().__init__()
        self._fd: Optional[int] = fd
        self._pipeid = pipeid
        self._remaining = expected_size
        self._expected = expected_size
        self._description = description
        self._finish_pipe = finish_pipe
        self._stall_seconds = stall_seconds
        self._abandoned = False
        self._finished = False
        self._ended_early = False
        # Set by the stall helper: the thread and what FinishPipe returned.
        self._finisher: Optional[threading.Thread] = None
        self._finisher_error: Optional[ProxyError] = None
        os.set_blocking(fd, False)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("blob is closed")
        return self._fd

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._fd is None:
            raise ValueError("read from a closed blob")
        if self._remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._remaining)
        if want == 0:
            return 0
        while True:
            try:
                got = _read_into(self._fd, view[:want])
                break
            except BlockingIOError:
                self._wait_readable()
        if got == 0:
            self._ended_early = True
            raise self._short_read_error()
        self._remaining -= got
        return got

    def _wait_readable(self) -> None:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        if self._finisher is None and self._stall_seconds is not None:
            if poller.poll(self._stall_seconds * 1000):
                return
            self._start_finisher()
        poller.poll()

    def _start_finisher(self) -> None:
        def run() -> None:
            try:
                self._finish_pipe(self._pipeid)
            except ProxyError as e:
                self._finisher_error = e

        self._finisher = threading.Thread(target=run, name="layerpipe-finish-pipe", daemon=True)
        self._finisher.start()

    def _short_read_error(self) -> ProxyError:
        done = self._expected - self._remaining
        message = f"{self._description}: pipe ended after {done} of {self._expected} bytes"
        finish_error = self._collect_finish()
        if finish_error is not None:
            return ProxyError(f"{message}: {finish_error.message}", finish_error.error_code)
        return ProxyError(message, OTHER)

    def _collect_finish(self) -> Optional[ProxyError]:
        """Sends FinishPipe once (or waits for the helper that sent it) and returns its error."""
        if self._finished:
            return None
        self._finished = True
        if self._finisher is not None:
            self._finisher.join()
            return self._finisher_error
        try:
            self._finish_pipe(self._pipeid)
        except ProxyError as e:
            return e
        return None

    def abandon(self) -> None:
        """The caller is unwinding an exception: close() must not raise over it."""
        self._abandoned = True

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._finish()
        finally:
            super().close()

    def _finish(self) -> None:
        stopped_early = self._remaining > 0 and not self._ended_early
        # Closing our end first ends a copy we stopped reading (it gets EPIPE), so
        # FinishPipe cannot wait on a full pipe.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        error = self._collect_finish()
        if error is None or self._abandoned or self._ended_early:
            return
        if stopped_early and error.broken_pipe:
            return
        raise ProxyError(f"{self._description}: {error.message}", error.error_code)

    def __del__(self) -> None:
        # Never talk to the proxy from a finaliser: it may run inside another request.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _RawBlobRaw(io.RawIOBase):
    """Raw reader of a GetRawBlob data pipe; the error pipe is read at EOF."""

    def __init__(self, data_fd: int, error_fd: int, announced_size: int, description: str) -> None:
        super().__init__()
        self._fd: Optional[int] = data_fd
        self._error_fd: Optional[int] = error_fd
        self._announced = announced_size
        self._received = 0
        self._description = description
        self._error: Optional[ProxyError] = None
        self._at_eof = False
        self._abandoned = False

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("blob is closed")
        return self._fd

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._fd is None:
            raise ValueError("read from a closed blob")
        if self._error is not None:
            raise self._error
        if self._at_eof:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) == 0:
            return 0
        got = _read_into(self._fd, view)
        if got == 0:
            self._at_eof = True
            self._check_outcome()
        self._received += got
        return got

    def _check_outcome(self) -> None:
        report = self._read_error_pipe()
        if report is not None:
            self._error = report
        elif self._announced >= 0 and self._received != self._announced:
            self._error = ProxyError(
                f"{self._description}: proxy announced {self._announced} bytes and sent {self._received}"
            )
        if self._error is not None:
            raise self._error

    def _read_error_pipe(self) -> Optional[ProxyError]:
        if self._error_fd is None:
            return None
        chunks = []
        try:
            while True:
                chunk = os.read(self._error_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self._error_fd)
            self._error_fd = None
        text = b"".join(chunks).decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            report = json.loads(text)
            code = str(report.get("code") or OTHER)
            message = str(report.get("message") or text)
        except (ValueError, AttributeError):
            code, message = OTHER, text
        return ProxyError(f"{self._description}: {message}", code)

    def abandon(self) -> None:
        self._abandoned = True

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._close_fds()
        finally:
            super().close()

    def _close_fds(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._at_eof:
            # Stopped early: the copy now fails with EPIPE, which is not news to us.
            self._drop_error_pipe()
            return
        if self._error is not None and not self._abandoned:
            raise self._error

    def _drop_error_pipe(self) -> None:
        if self._error_fd is not None:
            os.close(self._error_fd)
            self._error_fd = None

    def __del__(self) -> None:
        for fd in (self._fd, self._error_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._error_fd = None


class BlobReader(io.BufferedReader):
    """A binary file over a blob pipe. Leaving a `with` block (or close()) ends the
    transfer and raises ProxyError if the proxy reports a failure; when the block is
    left by an exception, that exception is kept and the proxy's error is dropped."""

    def __init__(self, raw: io.RawIOBase, digest: str, size: int) -> None:
        super().__init__(raw, buffer_size=BUFFER_SIZE)
        self.digest = digest
        # Size the proxy announced (or the caller's, for GetBlob), -1 if unknown.
        self.size = size

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[override]
        if exc_type is not None:
            self.raw.abandon()  # type: ignore[attr-defined]
        self.close()

    def __del__(self) -> None:
        # The raw reader's own finaliser releases the fds without a FinishPipe.
        pass


def piped_blob(
    fd: int,
    pipeid: int,
    digest: str,
    size: int,
    finish_pipe: FinishPipe,
    stall_seconds: Optional[float],
) -> BlobReader:
    raw = _PipedBlobRaw(fd, pipeid, size, f"blob {digest}", finish_pipe, stall_seconds)
    return BlobReader(raw, digest, size)


def raw_blob(data_fd: int, error_fd: int, digest: str, announced_size: int) -> BlobReader:
    raw = _RawBlobRaw(data_fd, error_fd, announced_size, f"raw blob {digest}")
    return BlobReader(raw, digest, announced_size)


def read_pipe_to_end(fd: int, sink: list) -> None:
    """Drains a pipe into `sink` (a list of chunks) and closes it."""
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            sink.append(chunk)
    finally:
        os.close(fd)
