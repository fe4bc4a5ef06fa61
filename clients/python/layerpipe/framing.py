"""How protocol 1.0 messages travel: one per SEQPACKET packet (fds riding on it), or
vscode-jsonrpc's `Content-Length` header framing on a byte stream (stdio).

A channel sends whole encoded messages and receives them one at a time, each with the fds
that came with it. Only the connection's reader thread receives; senders hold its lock.
"""

from __future__ import annotations

import os
import socket
from typing import BinaryIO, List, Optional, Tuple

from .errors import ProxyError
from .jsonrpc import MAX_MESSAGE_SIZE

# Room for more fds than a response carries, so that a surplus is detected, not truncated.
MAX_FDS = 4
# Header lines of a Content-Length frame are short; a longer one is garbage, not a header.
MAX_HEADER_LINE = 1024


def close_fds(fds: List[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class SeqpacketChannel:
    """A connected SOCK_SEQPACKET socket: a socketpair end or a unix-service connection."""

    carries_fds = True

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray(MAX_MESSAGE_SIZE + 1)
        self._ancillary = socket.CMSG_SPACE(MAX_FDS * 4)

    def send(self, data: bytes) -> None:
        sent = self._sock.send(data)
        if sent != len(data):
            raise ProxyError(f"short send of a message ({sent} of {len(data)} bytes)")

    def receive(self) -> Tuple[bytes, List[int]]:
        """The next packet and its fds (close-on-exec here); EOFError when the peer has gone."""
        flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
        size, ancillary, msg_flags, _ = self._sock.recvmsg_into([self._buffer], self._ancillary, flags)
        fds: List[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                whole = len(data) - len(data) % 4
                fds.extend(int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, whole, 4))
        try:
            if size == 0 and not fds:
                raise EOFError("the server closed the connection")
            if msg_flags & socket.MSG_TRUNC or size > MAX_MESSAGE_SIZE:
                raise ProxyError(f"a message larger than {MAX_MESSAGE_SIZE} bytes arrived")
            if msg_flags & socket.MSG_CTRUNC:
                raise ProxyError("a message carried more file descriptors than any response has")
            return bytes(self._buffer[:size]), fds
        except BaseException:
            close_fds(fds)
            raise

    def stop(self) -> None:
        """Wakes the reader (it sees EOF) and stops both directions."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self._sock.close()


def encode_frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_frame(stream: BinaryIO) -> Optional[bytes]:
    """One Content-Length frame's body from `stream`; None at a clean end of file (between
    frames). Other headers (Content-Type) are ignored, as vscode-jsonrpc does."""
    length: Optional[int] = None
    first = True
    while True:
        line = stream.readline(MAX_HEADER_LINE + 1)
        if not line:
            if first:
                return None
            raise ProxyError("the stream ended inside a frame header")
        first = False
        if len(line) > MAX_HEADER_LINE or not line.endswith(b"\n"):
            raise ProxyError(f"frame header line too long or cut: {line[:80]!r}")
        text = line.rstrip(b"\r\n")
        if not text:
            break
        name, sep, value = text.partition(b":")
        if not sep:
            raise ProxyError(f"malformed frame header {text[:80]!r}")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise ProxyError(f"malformed Content-Length {value[:40]!r}")
            length = int(value)
    if length is None:
        raise ProxyError("a frame has no Content-Length header")
    if length > MAX_MESSAGE_SIZE:
        raise ProxyError(f"a frame of {length} bytes is larger than {MAX_MESSAGE_SIZE}")
    body = stream.read(length)
    if len(body) != length:
        raise ProxyError(f"the stream ended inside a frame ({len(body)} of {length} bytes)")
    return body


class StreamChannel:
    """Content-Length frames over two byte streams (a `serve --stdio` child's stdout and stdin)."""

    carries_fds = False

    def __init__(self, incoming: BinaryIO, outgoing: BinaryIO) -> None:
        self._incoming = incoming
        self._outgoing = outgoing

    def send(self, data: bytes) -> None:
        self._outgoing.write(encode_frame(data))
        self._outgoing.flush()

    def receive(self) -> Tuple[bytes, List[int]]:
        body = read_frame(self._incoming)
        if body is None:
            raise EOFError("the server closed its output")
        return body, []

    def stop(self) -> None:
        """Closes our output: a stdio server exits 0 at end of input, which ends the reader."""
        try:
            self._outgoing.close()
        except OSError:
            pass

    def close(self) -> None:
        self.stop()
        try:
            self._incoming.close()
        except OSError:
            pass
