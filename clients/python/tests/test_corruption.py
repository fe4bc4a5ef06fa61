"""Blobs whose stored bytes do not match the manifest: GetBlob must fail, never hang."""

from __future__ import annotations

import hashlib
import os
import unittest

import support
from support import ocibuild

from layerpipe import ImageProxy, ProxyError

FIXTURE: support.Fixture


def setUpModule() -> None:
    global FIXTURE
    support.proxy_command()
    FIXTURE = support.Fixture()


def tearDownModule() -> None:
    FIXTURE.cleanup()


class TestCorruptedBlobs(unittest.TestCase):
    def setUp(self) -> None:
        self.proxy = ImageProxy(command=support.proxy_command(), stall_seconds=2.0)
        self.proxy.start()
        self.addCleanup(self.proxy.close)

    def _layout_with_big_blob(self, name: str, content: bytes) -> str:
        layout = FIXTURE.copy_layout(name)
        with open(ocibuild.blob_path(layout, FIXTURE.big.digest), "wb") as f:
            f.write(content)
        return layout

    def _get_blob(self, layout: str) -> bytes:
        img = self.proxy.open_image(f"oci:{layout}:latest")
        out = []

        def read() -> None:
            with self.proxy.get_blob(img, FIXTURE.big.digest, FIXTURE.big.size) as f:
                out.append(f.read())

        support.run_with_deadline(self, 60, read)
        return out[0]

    def test_same_length_garbage_fails_verification(self) -> None:
        garbage = bytearray(FIXTURE.big.blob)
        garbage[len(garbage) // 2] ^= 0xFF
        layout = self._layout_with_big_blob("flipped", bytes(garbage))
        with self.assertRaises(ProxyError) as caught:
            self._get_blob(layout)
        self.assertFalse(caught.exception.broken_pipe)
        self.assertIn(FIXTURE.big.digest, str(caught.exception))

    def test_truncated_blob_fails(self) -> None:
        layout = self._layout_with_big_blob("truncated", FIXTURE.big.blob[: FIXTURE.big.size // 3])
        with self.assertRaises(ProxyError):
            self._get_blob(layout)

    def test_extended_blob_fails(self) -> None:
        # Much more than a pipe buffer beyond the announced size.
        layout = self._layout_with_big_blob("extended", FIXTURE.big.blob + os.urandom(512 * 1024))
        with self.assertRaises(ProxyError):
            self._get_blob(layout)

    def test_session_survives_a_corrupted_blob(self) -> None:
        layout = self._layout_with_big_blob("flipped-again", os.urandom(FIXTURE.big.size))
        with self.assertRaises(ProxyError):
            self._get_blob(layout)
        img = self.proxy.open_image(FIXTURE.image.imageref)
        with self.proxy.get_blob(img, FIXTURE.big.digest, FIXTURE.big.size) as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), FIXTURE.big.digest.split(":")[1])

    def test_exact_size_reader_gets_the_error_without_a_stall_fallback(self) -> None:
        # Some clients read exactly `size` bytes and only then call FinishPipe. The
        # proxy must hand over every byte (or end the pipe) even when the digest is
        # wrong, or such a client waits forever. Repeated: the failure can be a race.
        garbage = bytearray(FIXTURE.big.blob)
        garbage[-100] ^= 0xFF
        layout = self._layout_with_big_blob("flipped-tail", bytes(garbage))
        strict = ImageProxy(command=support.proxy_command(), stall_seconds=None)
        strict.start()
        self.addCleanup(strict.close)
        img = strict.open_image(f"oci:{layout}:latest")

        def read() -> None:
            with strict.get_blob(img, FIXTURE.big.digest, FIXTURE.big.size) as f:
                f.read()

        for _ in range(5):
            with self.assertRaises(ProxyError) as caught:
                support.run_with_deadline(self, 20, read)
            self.assertIn("corrupt", str(caught.exception))

    def test_stall_fallback_ends_a_pipe_shorter_than_expected(self) -> None:
        # White-box: a reader expecting more bytes than the proxy will send (as when
        # a source announces no size and dies half-way) must not wait forever for
        # EOF that only FinishPipe brings.
        from layerpipe.blobs import piped_blob

        img = self.proxy.open_image(FIXTURE.image.imageref)
        big = FIXTURE.big
        _, pipeid, fds = self.proxy._call("GetBlob", [img.id, big.digest, big.size])
        reader = piped_blob(fds[0], pipeid, big.digest, big.size + 4096, self.proxy._finish_pipe, 1.0)

        def read() -> None:
            with reader as f:
                f.read()

        with self.assertRaises(ProxyError) as caught:
            support.run_with_deadline(self, 60, read)
        self.assertIn(f"after {big.size} of {big.size + 4096} bytes", str(caught.exception))
        self.assertEqual(self.proxy.get_manifest(img)[1], FIXTURE.image.manifest)

    def test_raw_blob_is_not_verified(self) -> None:
        garbage = os.urandom(FIXTURE.big.size)
        layout = self._layout_with_big_blob("raw-garbage", garbage)
        img = self.proxy.open_image(f"oci:{layout}:latest")
        if self.proxy.supports("GetRawBlob"):
            with self.proxy.get_raw_blob(img, FIXTURE.big.digest) as f:
                self.assertEqual(f.read(), garbage)
            return
        # Before 0.2.8 there is no unverified path: the client refuses GetRawBlob, and the
        # garbage only comes through GetBlob, which fails verification.
        support.assert_refused_locally(
            self, self.proxy, "GetRawBlob", "0.2.8", lambda: self.proxy.get_raw_blob(img, FIXTURE.big.digest)
        )
        with self.assertRaises(ProxyError) as caught:
            self._get_blob(layout)
        self.assertIn(FIXTURE.big.digest, str(caught.exception))

if __name__ == "__main__":
    unittest.main()
