"""Shared test setup: which proxy to run, the client on sys.path, image fixtures."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from typing import Callable, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import ocibuild  # noqa: E402

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
