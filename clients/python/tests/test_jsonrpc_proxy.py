"""Protocol 1.0 against the real proxy, on every wire and payload kind: the socketpair (fd,
fifo, stream), `serve --stdio` (fifo, stream) and a running `serve --listen unix:` (fd, stream).
Answers must equal the 0.2.x client's on the same images. Skipped when the proxy is skopeo."""

from __future__ import annotations

import hashlib
import os
import signal
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import support
import support1
from support import ocibuild

from layerpipe import ImageProxy, ProxyError, RpcError, connect

ARGV: List[str] = []
ARGS = ["--insecure-policy"]
FIXTURE: support.Fixture
MULTI: Dict[str, ocibuild.Image] = {}
INDEX_BYTES = b""
OLD: Dict[str, Any] = {}


def setUpModule() -> None:
    global FIXTURE, INDEX_BYTES
    ARGV[:] = support1.command_1_0()
    FIXTURE = support.Fixture()
    for arch in ("amd64", "arm64"):
        MULTI[arch] = ocibuild.write_image(FIXTURE.layout, FIXTURE.layers[:1], ref=f"only-{arch}", config_extra={"architecture": arch})
    INDEX_BYTES = support1.write_index(FIXTURE.layout, "multi", {f"linux/{a}": MULTI[a] for a in MULTI})
    # What the 0.2.x client answers for the same image: the reference for every wire.
    with ImageProxy(ARGV, ARGS) as old:
        img = old.open_image(FIXTURE.image.imageref)
        OLD.update(manifest=old.get_manifest(img), config=old.get_config(img), full_config=old.get_full_config(img), layers=old.get_layer_info(img))


def tearDownModule() -> None:
    FIXTURE.cleanup()


def sha256_of(f) -> str:
    hasher = hashlib.sha256()
    while True:
        chunk = f.read(100_000)
        if not chunk:
            return "sha256:" + hasher.hexdigest()
        hasher.update(chunk)


def skip_if_unimplemented(test: unittest.TestCase, error: ProxyError, what: str) -> None:
    if "not implemented" in str(error):
        test.skipTest(f"{what}: the server does not have it yet (rpc-methods): {error}")


class WireMethods:
    """Every method on one wire; subclasses say which wire and payload."""

    WIRE = "socketpair"
    PAYLOADS: Optional[List[str]] = None
    EXPECTED_PAYLOAD = "fd"
    proxy: Any
    service: Optional[support1.Service] = None

    @classmethod
    def setUpClass(cls) -> None:
        if cls.WIRE == "unix":
            cls.service = support1.Service(ARGV, ARGS)
            service = cls.service
            try:
                cls.proxy = support1.start_1_0(lambda: connect(service.address, payloads=cls.PAYLOADS))
            except BaseException:
                service.stop()
                raise
            return
        if cls.WIRE == "stdio":
            support1.require_stdio(ARGV, ARGS)

        def start() -> Any:
            proxy = ImageProxy(ARGV, ARGS, protocol="1.0", wire=cls.WIRE, payloads=cls.PAYLOADS)
            proxy.start()
            return proxy

        cls.proxy = support1.start_1_0(start)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.proxy.close()
        if cls.service is not None:
            stderr = cls.service.stderr()
            assert cls.service.stop() == 0, stderr

    def setUp(self) -> None:
        self.img = self.proxy.open_image(FIXTURE.image.imageref)
        self.addCleanup(self.proxy.close_image, self.img)

    def test_initialize(self) -> None:
        self.assertRegex(self.proxy.protocol_version, r"^1\.\d+\.\d+$")
        self.assertEqual(self.proxy.payload, self.EXPECTED_PAYLOAD)
        self.assertEqual(self.proxy.server.get("name"), "layerpipe")
        for method in ("OpenImage", "GetBlob", "FinishTransfer", "CancelTransfer"):
            self.assertTrue(self.proxy.supports(method), method)

    def test_answers_equal_0_2(self) -> None:
        manifest = self.proxy.get_manifest(self.img)
        self.assertEqual(tuple(manifest), OLD["manifest"])
        self.assertEqual(manifest.media_type, ocibuild.OCI_MANIFEST)
        self.assertEqual(self.proxy.get_config(self.img), OLD["config"])
        self.assertEqual(self.proxy.get_full_config(self.img), OLD["full_config"])
        self.assertEqual(self.proxy.get_layer_info(self.img), OLD["layers"])

    def test_every_blob_verified_and_raw(self) -> None:
        for layer in FIXTURE.layers:
            with self.subTest(layer=layer.digest):
                with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
                    self.assertEqual(f.read(), layer.blob)
                with self.proxy.get_blob(self.img, layer.digest) as f:
                    self.assertEqual(sha256_of(f), layer.digest)
                with self.proxy.get_raw_blob(self.img, layer.digest) as f:
                    self.assertEqual(f.read(), layer.blob)

    def test_32_threads_on_one_connection(self) -> None:
        def work(i: int) -> Any:
            kind = i % 4
            if kind == 0:
                layer = FIXTURE.layers[i % len(FIXTURE.layers)]
                with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
                    return sha256_of(f) == layer.digest
            if kind == 1:
                return tuple(self.proxy.get_manifest(self.img)) == OLD["manifest"]
            if kind == 2:
                return self.proxy.get_layer_info(self.img) == OLD["layers"]
            img = self.proxy.open_image(FIXTURE.image.imageref)
            try:
                return self.proxy.get_config(img) == OLD["config"]
            finally:
                self.proxy.close_image(img)

        def run() -> None:
            with ThreadPoolExecutor(max_workers=32) as pool:
                self.assertEqual(list(pool.map(work, range(64))), [True] * 64)

        support.run_with_deadline(self, 120, run)

    def test_two_blobs_interleaved_by_one_thread(self) -> None:
        a, b = FIXTURE.layers[1], FIXTURE.layers[2]
        with self.proxy.get_blob(self.img, a.digest, a.size) as fa, self.proxy.get_blob(self.img, b.digest, b.size) as fb:
            got_a, got_b = bytearray(), bytearray()
            while True:
                ca, cb = fa.read(50000), fb.read(50000)
                if not ca and not cb:
                    break
                got_a += ca
                got_b += cb
        self.assertEqual((bytes(got_a), bytes(got_b)), (a.blob, b.blob))

    def test_progress_callback(self) -> None:
        seen: List[Any] = []
        big = FIXTURE.big
        with self.proxy.get_blob(self.img, big.digest, big.size, progress=lambda n, total: seen.append((n, total))) as f:
            self.assertEqual(sha256_of(f), big.digest)
        self.assertTrue(seen, "no transfer/progress arrived")
        self.assertEqual([n for n, _ in seen], sorted(n for n, _ in seen))
        self.assertTrue(all(total == big.size for _, total in seen), seen)
        self.assertLessEqual(seen[-1][0], big.size)

    def test_early_close_cancels_and_the_session_goes_on(self) -> None:
        big = FIXTURE.big
        for _ in range(3):
            with self.proxy.get_blob(self.img, big.digest, big.size) as f:
                self.assertEqual(f.read(1000), big.blob[:1000])
            with self.proxy.get_raw_blob(self.img, big.digest) as f:
                self.assertEqual(f.read(10), big.blob[:10])
        with self.proxy.get_blob(self.img, big.digest, big.size) as f:
            self.assertEqual(f.read(), big.blob)

    def test_corrupted_blob_fails_after_every_byte(self) -> None:
        layout = FIXTURE.copy_layout(f"corrupt-{self.WIRE}-{self.EXPECTED_PAYLOAD}")
        garbage = bytearray(FIXTURE.big.blob)
        garbage[-1] ^= 0xFF
        with open(ocibuild.blob_path(layout, FIXTURE.big.digest), "wb") as out:
            out.write(garbage)
        img = self.proxy.open_image(f"oci:{layout}:latest")
        got = bytearray()
        with self.assertRaises(RpcError) as caught:
            with self.proxy.get_blob(img, FIXTURE.big.digest, FIXTURE.big.size) as f:
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    got += chunk
        self.assertEqual(caught.exception.code, -32004, caught.exception)
        self.assertEqual(bytes(got), bytes(garbage)[: len(got)])
        self.assertGreaterEqual(len(got), len(garbage) - 65536)
        self.assertEqual(tuple(self.proxy.get_manifest(self.img)), OLD["manifest"])

    def test_missing_images(self) -> None:
        missing = f"oci:{FIXTURE.layout}:no-such-ref"
        self.assertIsNone(self.proxy.open_image_optional(missing))
        with self.assertRaises(RpcError) as caught:
            self.proxy.open_image(missing)
        self.assertEqual(caught.exception.code, -32001)
        with self.assertRaises(RpcError) as caught:
            self.proxy.close_image(999999)
        self.assertNotEqual(caught.exception.code, -32601)

    def test_raw_blob_range(self) -> None:
        big = FIXTURE.big
        try:
            with self.proxy.get_raw_blob(self.img, big.digest, offset=1000, length=5000) as f:
                self.assertEqual(f.read(), big.blob[1000:6000])
            with self.proxy.get_raw_blob(self.img, big.digest, offset=big.size - 10) as f:
                self.assertEqual(f.read(), big.blob[-10:])
        except ProxyError as e:
            skip_if_unimplemented(self, e, "GetRawBlob offset/length")
            raise

    def test_index_raw_platform_instances_tags(self) -> None:
        img = self.proxy.open_image(f"oci:{FIXTURE.layout}:multi")
        self.addCleanup(self.proxy.close_image, img)
        try:
            raw = self.proxy.get_manifest(img, raw=True)
            self.assertEqual((raw.data, raw.digest), (INDEX_BYTES, ocibuild.sha256_digest(INDEX_BYTES)))
            arm = self.proxy.get_manifest(img, platform="linux/arm64")
            self.assertEqual((arm.digest, arm.data), (MULTI["arm64"].manifest_digest, MULTI["arm64"].manifest))
            instances = self.proxy.list_instances(img)
            self.assertEqual([(i["digest"], i["platform"]["architecture"]) for i in instances], [(MULTI[a].manifest_digest, a) for a in ("amd64", "arm64")])
            self.assertEqual(self.proxy.list_instances(self.img), [])
            tags = self.proxy.list_tags(f"oci:{FIXTURE.layout}")
            self.assertEqual(sorted(tags), ["latest", "multi", "only-amd64", "only-arm64"])
        except ProxyError as e:
            skip_if_unimplemented(self, e, "raw/platform manifests, ListInstances, ListTags")
            raise

    def test_bad_params_refused_before_sending(self) -> None:
        with self.assertRaises(ValueError):
            self.proxy.request("OpenImage", {"reference": 5})
        with self.assertRaises(ValueError):
            self.proxy.get_raw_blob(self.img, FIXTURE.big.digest, offset=-1)
        self.assertEqual(tuple(self.proxy.get_manifest(self.img)), OLD["manifest"])


class TestSocketpairFd(WireMethods, unittest.TestCase):
    pass


class TestSocketpairFifo(WireMethods, unittest.TestCase):
    PAYLOADS = ["fifo"]
    EXPECTED_PAYLOAD = "fifo"


class TestSocketpairStream(WireMethods, unittest.TestCase):
    PAYLOADS = ["stream"]
    EXPECTED_PAYLOAD = "stream"


class TestStdioFifo(WireMethods, unittest.TestCase):
    WIRE = "stdio"
    PAYLOADS = ["fifo"]
    EXPECTED_PAYLOAD = "fifo"


class TestStdioStream(WireMethods, unittest.TestCase):
    WIRE = "stdio"
    PAYLOADS = ["stream"]
    EXPECTED_PAYLOAD = "stream"


class TestServiceFd(WireMethods, unittest.TestCase):
    WIRE = "unix"


class TestServiceStream(WireMethods, unittest.TestCase):
    WIRE = "unix"
    PAYLOADS = ["stream"]
    EXPECTED_PAYLOAD = "stream"


class TestStreamCredit(unittest.TestCase):
    """A slow reader of a stream payload: the server sends no more than the window we
    granted, so what waits in this process stays under it, and the bytes are all there."""

    def test_slow_reader_small_window(self) -> None:
        window = 64 * 1024
        with ImageProxy(ARGV, ARGS, protocol="1.0", payloads=["stream"], window=window) as proxy:
            self.assertEqual(proxy.window, window)
            img = proxy.open_image(FIXTURE.image.imageref)
            big = FIXTURE.big
            got = bytearray()
            with proxy.get_blob(img, big.digest, big.size) as f:
                state = f.raw._state  # the in-band buffer of this transfer
                for i in range(40):
                    got += f.read(8192)
                    if i % 10 == 0:
                        time.sleep(0.2)  # let the server run into the window
                got += f.read()
            self.assertEqual(bytes(got), big.blob)
            self.assertGreater(state.high_water, 0)
            self.assertLessEqual(state.high_water, window)

    def test_default_window_with_two_slow_readers(self) -> None:
        with ImageProxy(ARGV, ARGS, protocol="1.0", payloads=["stream"]) as proxy:
            img = proxy.open_image(FIXTURE.image.imageref)
            a, b = FIXTURE.layers[1], FIXTURE.layers[2]
            with proxy.get_blob(img, a.digest, a.size) as fa, proxy.get_blob(img, b.digest, b.size) as fb:
                time.sleep(0.5)
                states = (fa.raw._state, fb.raw._state)
                self.assertEqual((fa.read(), fb.read()), (a.blob, b.blob))
            for state in states:
                self.assertLessEqual(state.high_water, proxy.window)


class TestServerDeath(unittest.TestCase):
    """The proxy killed mid-transfer: reads and calls end with an error naming its death,
    nothing hangs, and close() reports the signal."""

    def check(self, payload: str) -> None:
        proxy = ImageProxy(ARGV, ARGS, protocol="1.0", payloads=[payload])
        proxy.start()
        img = proxy.open_image(FIXTURE.image.imageref)
        big = FIXTURE.big

        def run() -> None:
            with self.assertRaises(ProxyError) as caught:
                with proxy.get_blob(img, big.digest, big.size) as f:
                    self.assertEqual(f.read(1000), big.blob[:1000])
                    os.kill(proxy.pid, signal.SIGKILL)
                    while f.read(65536):
                        pass
            self.assertIn("SIGKILL", str(caught.exception))
            with self.assertRaises(ProxyError):
                proxy.get_manifest(img)

        support.run_with_deadline(self, 60, run)
        with self.assertRaises(ProxyError) as closed:
            proxy.close()
        self.assertIn("SIGKILL", str(closed.exception))

    def test_fd_payload(self) -> None:
        self.check("fd")

    def test_stream_payload(self) -> None:
        self.check("stream")


class TestCancelPendingCall(unittest.TestCase):
    """$/cancelRequest ends a pending OpenImage at once (-32800) and the session keeps serving."""

    def setUp(self) -> None:
        self.stall = support1.StallingRegistry()
        self.addCleanup(self.stall.stop)
        self.proxy = ImageProxy(ARGV, [*ARGS, "--tls-verify=false"], protocol="1.0")
        self.proxy.start()
        self.addCleanup(self.proxy.close)

    def stalled(self, name: str) -> str:
        return f"docker://{self.stall.host}/stalled/{name}:tag"

    def test_open_image_timeout(self) -> None:
        with self.assertRaises(ProxyError) as caught:
            self.proxy.open_image(self.stalled("a"), timeout=2)
        self.assertTrue(caught.exception.retryable)
        img = self.proxy.open_image(FIXTURE.image.imageref, timeout=30)
        self.assertEqual(tuple(self.proxy.get_manifest(img)), OLD["manifest"])

    def test_cancel_answers_cancelled_while_other_calls_go_on(self) -> None:
        calls = [self.proxy.request_async("OpenImage", {"reference": self.stalled(f"n{i}")}) for i in range(4)]
        self.assertTrue(self.stall.wait_for(lambda: self.stall.accepted > 0, 20), "the proxy never reached the registry")
        quick = self.proxy.request("OpenImage", {"reference": FIXTURE.image.imageref}, timeout=30)
        self.assertIsInstance(quick["image"], int)
        for call in calls:
            call.cancel()
        for call in calls:
            with self.assertRaises(RpcError) as caught:
                call.result(5)
            self.assertTrue(caught.exception.cancelled, caught.exception)

    def test_cancelled_request_drops_its_registry_connection(self) -> None:
        call = self.proxy.request_async("OpenImage", {"reference": self.stalled("x")})
        self.assertTrue(self.stall.wait_for(lambda: self.stall.accepted > 0, 20), "the proxy never reached the registry")
        call.cancel()
        with self.assertRaises(RpcError) as caught:
            call.result(5)
        self.assertTrue(caught.exception.cancelled)
        # The HTTP request in flight is dropped at once (a TLS handshake in progress would
        # linger until undici's 10 s connect timeout; the stalling registry refuses TLS).
        self.assertTrue(self.stall.wait_for(lambda: self.stall.closed == self.stall.accepted, 5), "the cancelled request kept its registry connection")


if __name__ == "__main__":
    unittest.main()
