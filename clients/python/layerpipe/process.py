"""Starting the proxy process: socket handed over at fd 0 or --sockfd N, death with the parent."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
from typing import Callable, List, Optional, Sequence

from .errors import ProxyError, ProxyExitError

# How long a proxy that lost its connection is given to exit, for its status in the error.
EXIT_GRACE_SECONDS = 5.0

PR_SET_PDEATHSIG = 1
# The child's stderr tail we keep for error messages.
STDERR_TAIL_BYTES = 64 * 1024


def _load_prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Resolved in the parent: loading libraries after fork() in a threaded process can deadlock.
_PRCTL = _load_prctl()


def _make_preexec(die_with_parent: bool, move_fd: Optional[int], target_fd: Optional[int]) -> Optional[Callable[[], None]]:
    if not die_with_parent and move_fd is None:
        return None
    parent_pid = os.getpid()

    def preexec() -> None:
        # Runs in the child between fork and exec: async-signal-safe work only.
        if die_with_parent and _PRCTL is not None:
            if _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
            # The parent may have died before prctl took effect.
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
        if move_fd is not None and target_fd is not None:
            os.dup2(move_fd, target_fd)
            os.close(move_fd)

    return preexec


class ProxyProcess:
    """The spawned proxy with its stderr drained into a bounded tail."""

    def __init__(
        self,
        argv: Sequence[str],
        child_socket_fd: int,
        sockfd: Optional[int],
        die_with_parent: bool,
        capture_stderr: bool,
        stdio_pipes: bool = False,
    ) -> None:
        """With stdio_pipes the child's stdin and stdout are pipes (`serve --stdio`) and
        child_socket_fd is ignored."""
        self.argv = list(argv)
        self._stderr_tail = bytearray()
        self._stderr_lock = threading.Lock()
        self._stderr_thread: Optional[threading.Thread] = None
        stdin: Optional[int] = subprocess.DEVNULL
        pass_fds: List[int] = []
        move_fd: Optional[int] = None
        placed_fd: Optional[int] = None
        if stdio_pipes:
            stdin = subprocess.PIPE
        elif sockfd is None:
            stdin = child_socket_fd
        else:
            if sockfd < 3:
                raise ValueError("sockfd must be 3 or more (0-2 are the child's stdio)")
            # Atomically take the lowest free fd >= sockfd; when that is sockfd itself
            # the child inherits it in place, otherwise preexec moves it there.
            placed_fd = fcntl.fcntl(child_socket_fd, fcntl.F_DUPFD_CLOEXEC, sockfd)
            if placed_fd == sockfd:
                pass_fds = [sockfd]
            else:
                pass_fds = [placed_fd, sockfd]
                move_fd = placed_fd
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=stdin,
                stdout=subprocess.PIPE if stdio_pipes else subprocess.DEVNULL,
                stderr=subprocess.PIPE if capture_stderr else None,
                pass_fds=pass_fds,
                preexec_fn=_make_preexec(die_with_parent, move_fd, sockfd),
            )
        except OSError as e:
            raise ProxyError(f"cannot start {self.argv[0]}: {e}") from e
        finally:
            if placed_fd is not None:
                os.close(placed_fd)
        if self.popen.stderr is not None:
            self._stderr_thread = threading.Thread(
                target=self._drain_stderr, name="layerpipe-proxy-stderr", daemon=True
            )
            self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _drain_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            with self._stderr_lock:
                self._stderr_tail += chunk
                del self._stderr_tail[:-STDERR_TAIL_BYTES]
        stream.close()

    def stderr_text(self) -> str:
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        with self._stderr_lock:
            return self._stderr_tail.decode("utf-8", "replace")

    def wait(self, timeout: Optional[float]) -> int:
        """Waits for exit; kills the child after `timeout` seconds and raises."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise ProxyExitTimeout(timeout)

    def exit_description(self) -> str:
        code = self.popen.returncode
        if code is None:
            return "is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with status {code}"


    def lost_error(self, what: str) -> ProxyExitError:
        """The error for a connection to this process that broke: `what` said, then its exit
        status and stderr once it has exited (waiting EXIT_GRACE_SECONDS for that)."""
        try:
            self.popen.wait(timeout=EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        return ProxyExitError(
            f"{what}; {self.argv[0]} {self.exit_description()}",
            self.popen.returncode,
            self.stderr_text() if self.popen.returncode is not None else "",
        )

class ProxyExitTimeout(Exception):
    def __init__(self, timeout: Optional[float]) -> None:
        super().__init__(f"did not exit within {timeout} seconds and was killed")
