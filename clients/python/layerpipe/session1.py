"""Where a 1.0 session's messages go: a child on a SEQPACKET socketpair
(`experimental-image-proxy`, which tells 1.0 from 0.2.x by the first packet), a child
speaking Content-Length frames on its stdio (`serve --stdio`), or a connection to a running
`serve --listen unix:PATH`. An Endpoint owns the channel and the child, and ends them.
"""

from __future__ import annotations

import os
import socket
from typing import Any, List, Mapping, Optional, Sequence, Union

from .connection import RpcConnection
from .errors import ProxyError, ProxyExitError
from .framing import SeqpacketChannel, StreamChannel
from .process import EXIT_GRACE_SECONDS, ProxyExitTimeout, ProxyProcess


class Endpoint:
    def __init__(self, channel: Any, process: Optional[ProxyProcess], description: str) -> None:
        self.channel = channel
        self.process = process
        self.description = description

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    @property
    def returncode(self) -> Optional[int]:
        return self.process.popen.returncode if self.process is not None else None

    def describe_loss(self, cause: BaseException) -> ProxyError:
        """The error pending calls get when the connection ends (the child's status and stderr)."""
        process = self.process
        if process is None:
            return ProxyError(f"lost the connection to {self.description} ({cause})")
        if isinstance(cause, ProxyError):
            # The server broke the protocol; it may well still be running.
            return ProxyError(f"{cause.message}; {process.argv[0]} {process.exit_description()}", cause.error_code)
        return process.lost_error(f"lost the proxy ({cause})")

    def abort(self, connection: RpcConnection) -> None:
        """Tears down after a failed start: no Shutdown, no exit-status check."""
        self.channel.stop()
        if self.process is not None and self.process.popen.poll() is None:
            self.process.popen.kill()
            self.process.popen.wait()
        connection.join(EXIT_GRACE_SECONDS)
        self.channel.close()

    def finish(self, connection: RpcConnection, timeout: Optional[float]) -> None:
        """Shutdown for a child, then its exit; only the connection for the service."""
        process = self.process
        if process is not None and connection.lost is None:
            try:
                connection.call("Shutdown", None, timeout=timeout)
            except ProxyError:
                pass  # already gone: its exit status tells why
        self.channel.stop()
        if process is None:
            connection.join(EXIT_GRACE_SECONDS)
            self.channel.close()
            return
        try:
            process.wait(timeout)
        except ProxyExitTimeout as e:
            raise ProxyExitError(f"proxy {process.argv[0]} {e}", None, process.stderr_text()) from None
        finally:
            connection.join(EXIT_GRACE_SECONDS)
            self.channel.close()
        if process.popen.returncode != 0:
            raise ProxyExitError(
                f"proxy {process.argv[0]} {process.exit_description()}", process.popen.returncode, process.stderr_text()
            )


def service_path(address: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """The socket of "unix:PATH"; "unix:" alone is the service's default,
    $XDG_RUNTIME_DIR/layerpipe/layerpipe.sock (as `serve --listen unix:` chooses it)."""
    if not address.startswith("unix:"):
        raise ValueError(f"address must be unix:PATH, not {address!r}")
    path = address[len("unix:"):]
    if path:
        return path
    runtime = (environ if environ is not None else os.environ).get("XDG_RUNTIME_DIR", "")
    if not runtime:
        raise ValueError("unix: with no path needs $XDG_RUNTIME_DIR (the service's default socket lives there)")
    return os.path.join(runtime, "layerpipe", "layerpipe.sock")


def open_endpoint(
    command: Union[str, Sequence[str], None],
    args: List[str],
    wire: str,
    address: Optional[str],
    sockfd: Optional[int],
    die_with_parent: bool,
    capture_stderr: bool,
) -> Endpoint:
    if wire == "unix":
        if not address:
            raise ValueError("the unix wire needs an address (a socket path)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address)
        except OSError as e:
            sock.close()
            raise ProxyError(f"cannot connect to unix:{address}: {e}") from None
        return Endpoint(SeqpacketChannel(sock), None, f"unix:{address}")
    if command is None:
        command = ["layerpipe"]
    elif isinstance(command, str):
        command = [command]
    if not command:
        raise ValueError("command must name a program")
    if wire == "stdio":
        if sockfd is not None:
            raise ValueError("sockfd is for the socketpair wire")
        process = ProxyProcess([*command, "serve", "--stdio", *args], -1, None, die_with_parent, capture_stderr, stdio_pipes=True)
        assert process.popen.stdout is not None and process.popen.stdin is not None
        return Endpoint(StreamChannel(process.popen.stdout, process.popen.stdin), process, "serve --stdio")
    argv = [*command, "experimental-image-proxy"]
    if sockfd is not None:
        argv += ["--sockfd", str(sockfd)]
    argv += args
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        process = ProxyProcess(argv, theirs.fileno(), sockfd, die_with_parent, capture_stderr)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return Endpoint(SeqpacketChannel(ours), process, "experimental-image-proxy")
