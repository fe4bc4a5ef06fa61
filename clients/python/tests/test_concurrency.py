"""Several blobs streaming at once, from several threads and from one."""

from __future__ import annotations

import hashlib
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import List

import support

from layerpipe import ImageProxy, UnsupportedMethodError

FIXTURE: support.Fixture


def setUpModule() -> None:
    global FIXTURE
    support.proxy_command()
    FIXTURE = support.Fixture()


def tearDownModule() -> None:
    FIXTURE.cleanup()


def sha256_of(f) -> str:
    hasher = hashlib.sha256()
    while True:
        chunk = f.read(32 * 1024)
        if not chunk:
            return "sha256:" + hasher.hexdigest()
        hasher.update(chunk)


class TestConcurrentBlobs(unittest.TestCase):
    def setUp(self) -> None:
        self.proxy = ImageProxy(command=support.proxy_command())
        self.proxy.start()
        self.addCleanup(self.proxy.close)
        self.img = self.proxy.open_image(FIXTURE.image.imageref)

    def test_many_threads_read_blobs_at_once(self) -> None:
        layers = FIXTURE.layers * 3
        # Every thread has its pipe before any of them reads, so the copies overlap.
        barrier = threading.Barrier(len(layers))

        def fetch(layer) -> str:
            with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
                barrier.wait(timeout=30)
                return sha256_of(f)

        def run() -> None:
            with ThreadPoolExecutor(max_workers=len(layers)) as pool:
                digests = list(pool.map(fetch, layers))
            self.assertEqual(digests, [l.digest for l in layers])

        support.run_with_deadline(self, 120, run)

    def test_metadata_calls_while_blobs_stream(self) -> None:
        errors: List[BaseException] = []
        stop = threading.Event()

        def metadata() -> None:
            try:
                while not stop.is_set():
                    self.assertEqual(self.proxy.get_manifest(self.img)[1], FIXTURE.image.manifest)
                    self.assertEqual(self.proxy.get_config(self.img), FIXTURE.image.config["config"])
            except BaseException as e:
                errors.append(e)

        def run() -> None:
            poller = threading.Thread(target=metadata)
            poller.start()
            try:
                for _ in range(3):
                    with ThreadPoolExecutor(max_workers=4) as pool:
                        digests = list(pool.map(self._fetch_digest, FIXTURE.layers))
                    self.assertEqual(digests, [l.digest for l in FIXTURE.layers])
            finally:
                stop.set()
                poller.join()
            if errors:
                raise errors[0]

        support.run_with_deadline(self, 120, run)

    def _fetch_digest(self, layer) -> str:
        with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
            return sha256_of(f)

    def test_one_thread_interleaves_two_blobs(self) -> None:
        a, b = FIXTURE.layers[1], FIXTURE.layers[2]

        def run() -> None:
            with self.proxy.get_blob(self.img, a.digest, a.size) as fa, self.proxy.get_blob(self.img, b.digest, b.size) as fb:
                got_a, got_b = bytearray(), bytearray()
                while True:
                    ca, cb = fa.read(50000), fb.read(50000)
                    if not ca and not cb:
                        break
                    got_a += ca
                    got_b += cb
            self.assertEqual(bytes(got_a), a.blob)
            self.assertEqual(bytes(got_b), b.blob)

        support.run_with_deadline(self, 60, run)

    def test_raw_blobs_from_many_threads_or_their_verified_fallback(self) -> None:
        # What a client written for both proxy generations does: GetRawBlob when the proxy
        # has it, else GetBlob. The refusal must come at once and leave other streams alone.
        layers = FIXTURE.layers * 2
        barrier = threading.Barrier(len(layers))
        paths: List[str] = []

        def fetch(layer) -> str:
            try:
                f = self.proxy.get_raw_blob(self.img, layer.digest)
                paths.append("raw")
            except UnsupportedMethodError as e:
                self.assertEqual((e.method, e.needed), ("GetRawBlob", "0.2.8"))
                f = self.proxy.get_blob(self.img, layer.digest, layer.size)
                paths.append("verified")
            with f:
                barrier.wait(timeout=30)
                return sha256_of(f)

        def run() -> None:
            with ThreadPoolExecutor(max_workers=len(layers)) as pool:
                self.assertEqual(list(pool.map(fetch, layers)), [l.digest for l in layers])

        support.run_with_deadline(self, 120, run)
        expected = "raw" if self.proxy.protocol_version == "0.2.8" else "verified"
        self.assertEqual(paths, [expected] * len(layers))
        self.assertEqual(self.proxy.get_manifest(self.img)[1], FIXTURE.image.manifest)

if __name__ == "__main__":
    unittest.main()
