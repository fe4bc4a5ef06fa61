"""Shared test setup: which proxy to run, the client on sys.path, image fixtures."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from typing import Any, Callable, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import ocibuild  # noqa: E402

from layerpipe import ImageProxy, UnsupportedMethodError, wire  # noqa: E402

INSTALL_HINT = (
    "set LAYERPIPE_PROXY_COMMAND to a proxy (e.g. /work/main/bin/layerpipe after `npm run build`, "
    "or skopeo: `apt-get install skopeo`)"
)


def proxy_command() -> List[str]:
    """The proxy under test: LAYERPIPE_PROXY_COMMAND (a shell-quoted command), else skopeo.

    Skips the calling test when it is missing, except under CI=true, where that fails.
    """
    text = os.environ.get("LAYERPIPE_PROXY_COMMAND", "").strip()
    argv = shlex.split(text) if text else ["skopeo"]
    found = shutil.which(argv[0]) if os.sep not in argv[0] else (argv[0] if os.access(argv[0], os.X_OK) else None)
    if found is None:
        message = f"proxy command {argv[0]!r} not found; {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    return argv


def require_skopeo() -> str:
    """skopeo builds dir: images from OCI layouts (`skopeo copy`)."""
    path = shutil.which("skopeo")
    if path is None:
        message = "skopeo is needed to build dir: test images (apt-get install skopeo)"
        if os.environ.get("CI") == "true":
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    return path


def skopeo_copy(src: str, dst: str, *extra: str) -> None:
    subprocess.run(
        [require_skopeo(), "--insecure-policy", "copy", "-q", *extra, src, dst],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class Fixture:
    """A temporary directory with a small multi-layer OCI layout."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="layerpipe-pytest-")
        self.layout = os.path.join(self.root, "layout")
        self.layers = [
            ocibuild.make_layer({"etc": ocibuild.DIRECTORY, "etc/hostname": b"fixture\n", "etc/motd": b"hello\n"}),
            # Larger than a pipe's buffer, so copies block until the client reads.
            ocibuild.make_layer({"data": ocibuild.DIRECTORY, "data/big.bin": os.urandom(3 * 1024 * 1024)}),
            ocibuild.make_layer({"data": ocibuild.DIRECTORY, "data/mid.bin": os.urandom(1024 * 1024)}),
            ocibuild.make_layer({"usr": ocibuild.DIRECTORY, "usr/share": ocibuild.DIRECTORY, "usr/share/doc": b"x" * 100000}, ocibuild.LAYER_TAR),
        ]
        self.image = ocibuild.write_image(self.layout, self.layers)
        self.big = self.layers[1]

    def copy_layout(self, name: str) -> str:
        dst = os.path.join(self.root, name)
        shutil.copytree(self.layout, dst)
        return dst

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run_with_deadline(test: unittest.TestCase, seconds: float, body: Callable[[], None]) -> None:
    """Runs body in a thread; a hang becomes a test failure instead of a stuck suite."""
    outcome: List[Optional[BaseException]] = [None]

    def run() -> None:
        try:
            body()
        except BaseException as e:  # re-raised in the test thread
            outcome[0] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        test.fail(f"did not finish within {seconds} s (deadlock?)")
    if outcome[0] is not None:
        raise outcome[0]


@contextlib.contextmanager
def requests_sent() -> Iterator[List[str]]:
    """Records the method of every request the client puts on any socket inside the block.

    Wraps the client's own send function (the proxy stays real), so a test can tell a
    request refused by the client from one refused by the proxy.
    """
    sent: List[str] = []
    original = wire.send_request

    def recording(sock: Any, method: str, args: List[Any]) -> None:
        sent.append(method)
        original(sock, method, args)

    wire.send_request = recording
    try:
        yield sent
    finally:
        wire.send_request = original


def open_fds() -> List[str]:
    return sorted(os.listdir("/proc/self/fd"))


def assert_refused_locally(
    test: unittest.TestCase, proxy: ImageProxy, method: str, needed: str, call: Callable[[], Any]
) -> UnsupportedMethodError:
    """`call` on a proxy older than `needed` raises UnsupportedMethodError naming the method and
    both versions, without sending a request or leaving a file descriptor open."""
    before = open_fds()
    with requests_sent() as sent:
        with test.assertRaises(UnsupportedMethodError) as caught:
            call()
    error = caught.exception
    test.assertEqual(sent, [], f"{method} reached the wire")
    test.assertEqual(open_fds(), before)
    test.assertEqual((error.method, error.needed, error.spoken), (method, needed, proxy.protocol_version))
    test.assertIn(f"{method} needs image-proxy protocol {needed}", str(error))
    test.assertIn(f"this proxy speaks {proxy.protocol_version}", str(error))
    return error


def exchange_unchecked(proxy: ImageProxy, method: str, args: List[Any]) -> Tuple[wire.Reply, List[int]]:
    """One request sent past the client's version check, and the proxy's reply as it came."""
    with proxy._lock:
        assert proxy._sock is not None
        wire.send_request(proxy._sock, method, args)
        return wire.receive_reply(proxy._sock)
