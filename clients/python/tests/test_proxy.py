"""Every ImageProxy method against a real proxy (skopeo or layerpipe)."""

from __future__ import annotations

import hashlib
import json
import threading
import unittest
from typing import List

import support
from support import ocibuild

from layerpipe import ImageProxy, OpenedImage, ProxyError, UnsupportedMethodError, wire
from layerpipe.blobs import read_pipe_to_end

FIXTURE: support.Fixture


def setUpModule() -> None:
    global FIXTURE
    support.proxy_command()
    FIXTURE = support.Fixture()


def tearDownModule() -> None:
    FIXTURE.cleanup()


class ProxyCase(unittest.TestCase):
    def setUp(self) -> None:
        self.proxy = ImageProxy(command=support.proxy_command())
        self.proxy.start()
        # close() raises if the proxy exits non-zero: every test checks a clean exit.
        self.addCleanup(self.proxy.close)
        self.image = FIXTURE.image
        self.img = self.proxy.open_image(self.image.imageref)

    def assert_in_step(self) -> None:
        """The session still pairs requests with their replies."""
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)


class TestSession(ProxyCase):
    def test_initialize_reports_a_compatible_version(self) -> None:
        version = self.proxy.protocol_version
        self.assertRegex(version, r"^0\.2\.\d+$")
        self.assertGreaterEqual(int(version.split(".")[2]), 3)

    def test_open_image_returns_distinct_ids(self) -> None:
        second = self.proxy.open_image(self.image.imageref)
        self.assertIsInstance(second, OpenedImage)
        self.assertNotEqual(second.id, self.img.id)
        self.assertGreater(second.id, 0)
        self.assertEqual(second.ref, self.image.imageref)

    def test_open_unknown_layout_fails(self) -> None:
        with self.assertRaises(ProxyError) as caught:
            self.proxy.open_image(f"oci:{FIXTURE.root}/no-such-layout:latest")
        self.assertIn(caught.exception.error_code, ("other", "retryable"))
        self.assertFalse(caught.exception.retryable)

    def test_open_unknown_ref_fails(self) -> None:
        with self.assertRaises(ProxyError):
            self.proxy.open_image(f"oci:{FIXTURE.layout}:no-such-ref")

    def test_open_malformed_reference_fails(self) -> None:
        with self.assertRaises(ProxyError):
            self.proxy.open_image("no-such-transport:whatever")

    def test_close_image_then_use_fails(self) -> None:
        img = self.proxy.open_image(self.image.imageref)
        self.proxy.close_image(img)
        with self.assertRaises(ProxyError):
            self.proxy.get_manifest(img)
        # Other images stay usable.
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)

    def test_close_unknown_image_fails(self) -> None:
        with self.assertRaises(ProxyError):
            self.proxy.close_image(987654)

    def test_errors_leave_the_session_usable(self) -> None:
        for _ in range(3):
            with self.assertRaises(ProxyError):
                self.proxy.open_image(f"oci:{FIXTURE.layout}:missing")
        self.assertEqual(self.proxy.get_manifest(self.img)[0], self.image.manifest_digest)


class TestMetadata(ProxyCase):
    def test_get_manifest_returns_stored_bytes_and_their_digest(self) -> None:
        digest, raw = self.proxy.get_manifest(self.img)
        self.assertEqual(raw, self.image.manifest)
        self.assertEqual(digest, self.image.manifest_digest)
        self.assertEqual(digest, "sha256:" + hashlib.sha256(raw).hexdigest())

    def test_get_full_config_matches_the_config_blob(self) -> None:
        self.assertEqual(self.proxy.get_full_config(self.img), self.image.config)

    def test_get_config_is_the_config_member(self) -> None:
        self.assertEqual(self.proxy.get_config(self.img), self.image.config["config"])

    def test_get_layer_info_lists_manifest_layers(self) -> None:
        if not self.proxy.supports("GetLayerInfo"):
            support.assert_refused_locally(self, self.proxy, "GetLayerInfo", "0.2.5", lambda: self.proxy.get_layer_info(self.img))
            self.assert_in_step()
            return
        info = self.proxy.get_layer_info(self.img)
        expected = [{"digest": l.digest, "size": l.size, "media_type": l.media_type} for l in self.image.layers]
        self.assertEqual([{k: d[k] for k in ("digest", "size", "media_type")} for d in info], expected)

    def test_open_image_optional(self) -> None:
        missing = f"oci:{FIXTURE.layout}:no-such-ref"
        if not self.proxy.supports("OpenImageOptional"):
            support.assert_refused_locally(self, self.proxy, "OpenImageOptional", "0.2.4", lambda: self.proxy.open_image_optional(missing))
            # What a 0.2.3 client has instead: OpenImage, with a missing image as an error.
            with self.assertRaises(ProxyError) as caught:
                self.proxy.open_image(missing)
            self.assertNotIsInstance(caught.exception, UnsupportedMethodError)
            self.assert_in_step()
            return
        self.assertIsNone(self.proxy.open_image_optional(missing))
        found = self.proxy.open_image_optional(self.image.imageref)
        self.assertIsNotNone(found)
        assert found is not None
        self.assertEqual(self.proxy.get_manifest(found)[1], self.image.manifest)

    def test_open_image_optional_still_fails_on_bad_references(self) -> None:
        bad = "no-such-transport:whatever"
        if not self.proxy.supports("OpenImageOptional"):
            # The version check comes first: the proxy never sees the bad reference.
            support.assert_refused_locally(self, self.proxy, "OpenImageOptional", "0.2.4", lambda: self.proxy.open_image_optional(bad))
            self.assert_in_step()
            return
        with self.assertRaises(ProxyError) as caught:
            self.proxy.open_image_optional(bad)
        self.assertNotIsInstance(caught.exception, UnsupportedMethodError)

    def test_client_sends_newer_methods_only_to_proxies_that_have_them(self) -> None:
        layer = self.image.layers[0]
        with support.requests_sent() as sent:
            calls = {
                "OpenImageOptional": lambda: self.proxy.open_image_optional(self.image.imageref),
                "GetLayerInfo": lambda: self.proxy.get_layer_info(self.img),
                "GetRawBlob": lambda: self._read_raw(layer.digest),
            }
            refused: List[str] = []
            for method, call in calls.items():
                try:
                    call()
                except UnsupportedMethodError as e:
                    self.assertEqual(e.method, method)
                    refused.append(method)
        version = self.proxy.protocol_version
        if version == "0.2.3":  # skopeo 1.9
            self.assertEqual(refused, list(calls))
            self.assertEqual(sent, [])
        elif version == "0.2.8":  # layerpipe, skopeo >= 1.14
            self.assertEqual(refused, [])
            # From 0.2.7 the layer list comes through a pipe, which FinishPipe ends.
            self.assertEqual(sent, ["OpenImageOptional", "GetLayerInfoPiped", "FinishPipe", "GetRawBlob"])
        else:
            self.assertEqual(refused, [m for m in calls if not self.proxy.supports(m)])
        self.assert_in_step()

    def _read_raw(self, digest: str) -> bytes:
        with self.proxy.get_raw_blob(self.img, digest) as f:
            return f.read()


class TestNewerMethodsOnTheWire(ProxyCase):
    """The client's version table against the proxy itself: requests sent past the client's
    check are answered as the proxy's version says, and the session carries on."""

    def assert_unknown_to_the_proxy(self, method: str, args: list) -> None:
        reply, fds = support.exchange_unchecked(self.proxy, method, args)
        wire.close_fds(fds)
        self.assertFalse(reply.success)
        self.assertEqual((fds, reply.pipeid, reply.value), ([], 0, None))
        self.assertEqual(reply.error, f"unknown method: {method}")
        self.assert_in_step()

    def test_open_image_optional(self) -> None:
        if not self.proxy.supports("OpenImageOptional"):
            return self.assert_unknown_to_the_proxy("OpenImageOptional", [self.image.imageref])
        reply, fds = support.exchange_unchecked(self.proxy, "OpenImageOptional", [f"oci:{FIXTURE.layout}:no-such-ref"])
        self.assertEqual((reply.success, reply.value, fds), (True, 0, []))
        reply, fds = support.exchange_unchecked(self.proxy, "OpenImageOptional", [self.image.imageref])
        self.assertTrue(reply.success, reply.error)
        self.assertIsInstance(reply.value, int)
        self.assertGreater(reply.value, self.img.id)
        self.assertEqual(fds, [])
        self.assertEqual(self.proxy.get_manifest(reply.value)[1], self.image.manifest)

    def test_inline_get_layer_info(self) -> None:
        # The pre-0.2.7 form, which this client skips on proxies that have the piped one.
        if not self.proxy.supports("GetLayerInfo"):
            return self.assert_unknown_to_the_proxy("GetLayerInfo", [self.img.id])
        reply, fds = support.exchange_unchecked(self.proxy, "GetLayerInfo", [self.img.id])
        self.assertTrue(reply.success, reply.error)
        self.assertEqual((fds, reply.pipeid), ([], 0))
        self.assertEqual(reply.value, self.proxy.get_layer_info(self.img))
        self.assertEqual([d["digest"] for d in reply.value], [l.digest for l in self.image.layers])

    def test_piped_get_layer_info(self) -> None:
        if not self.proxy.supports("GetLayerInfoPiped"):
            return self.assert_unknown_to_the_proxy("GetLayerInfoPiped", [self.img.id])
        reply, fds = support.exchange_unchecked(self.proxy, "GetLayerInfoPiped", [self.img.id])
        self.assertTrue(reply.success, reply.error)
        self.assertEqual(len(fds), 1)
        self.assertNotEqual(reply.pipeid, 0)
        chunks: List[bytes] = []
        reader = threading.Thread(target=read_pipe_to_end, args=(fds[0], chunks))
        reader.start()
        finish, finish_fds = support.exchange_unchecked(self.proxy, "FinishPipe", [reply.pipeid])
        reader.join(30)
        self.assertTrue(finish.success, finish.error)
        self.assertEqual(finish_fds, [])
        layers = json.loads(b"".join(chunks))
        self.assertEqual([(d["digest"], d["size"]) for d in layers], [(l.digest, l.size) for l in self.image.layers])
        self.assert_in_step()

    def test_get_raw_blob(self) -> None:
        layer = self.image.layers[0]
        if not self.proxy.supports("GetRawBlob"):
            return self.assert_unknown_to_the_proxy("GetRawBlob", [self.img.id, layer.digest])
        reply, fds = support.exchange_unchecked(self.proxy, "GetRawBlob", [self.img.id, layer.digest])
        self.assertTrue(reply.success, reply.error)
        self.assertEqual((reply.value, reply.pipeid, len(fds)), (layer.size, 0, 2))
        data: List[bytes] = []
        errors: List[bytes] = []
        read_pipe_to_end(fds[0], data)
        read_pipe_to_end(fds[1], errors)
        self.assertEqual(b"".join(data), layer.blob)
        self.assertEqual(b"".join(errors), b"")
        self.assert_in_step()


class TestGetBlob(ProxyCase):
    def test_each_layer_and_the_config(self) -> None:
        for layer in self.image.layers:
            with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
                self.assertEqual(f.read(), layer.blob)
        with self.proxy.get_blob(self.img, self.image.config_digest, len(self.image.config_bytes)) as f:
            self.assertEqual(json.loads(f.read()), self.image.config)

    def test_small_reads_and_readinto(self) -> None:
        big = FIXTURE.big
        hasher = hashlib.sha256()
        with self.proxy.get_blob(self.img, big.digest, big.size) as f:
            self.assertEqual(f.size, big.size)
            buf = bytearray(7919)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                hasher.update(buf[:n])
            self.assertEqual(f.read(), b"")
        self.assertEqual("sha256:" + hasher.hexdigest(), big.digest)

    def test_leaving_early_is_not_an_error(self) -> None:
        big = FIXTURE.big
        with self.proxy.get_blob(self.img, big.digest, big.size) as f:
            self.assertEqual(f.read(10), big.blob[:10])
        with self.proxy.get_blob(self.img, big.digest, big.size) as f:
            self.assertEqual(f.read(), big.blob)

    def test_exception_inside_the_block_wins(self) -> None:
        big = FIXTURE.big
        with self.assertRaises(KeyError):
            with self.proxy.get_blob(self.img, big.digest, big.size) as f:
                f.read(1000)
                raise KeyError("from the caller")
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)

    def test_close_without_with(self) -> None:
        layer = self.image.layers[0]
        f = self.proxy.get_blob(self.img, layer.digest, layer.size)
        data = f.read()
        f.close()
        self.assertTrue(f.closed)
        self.assertEqual(data, layer.blob)

    def test_unknown_digest_fails(self) -> None:
        missing = ocibuild.sha256_digest(b"not in this image")
        with self.assertRaises(ProxyError):
            with self.proxy.get_blob(self.img, missing, 17) as f:
                f.read()
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)

    def test_malformed_digest_fails(self) -> None:
        with self.assertRaises(ProxyError):
            with self.proxy.get_blob(self.img, "sha256:not-hex", 10) as f:
                f.read()

    def test_wrong_size_fails_verification(self) -> None:
        layer = self.image.layers[0]
        with self.assertRaises(ProxyError) as caught:
            support.run_with_deadline(self, 60, lambda: self._read_all(layer.digest, layer.size + 1))
        self.assertFalse(caught.exception.broken_pipe)

    def _read_all(self, digest: str, size: int) -> None:
        with self.proxy.get_blob(self.img, digest, size) as f:
            while f.read(65536):
                pass

    def test_negative_size_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            self.proxy.get_blob(self.img, self.image.layers[0].digest, -1)


class TestGetRawBlob(ProxyCase):
    """GetRawBlob on 0.2.8; on older proxies the client refuses it before sending anything."""

    def refused(self, digest: str) -> None:
        support.assert_refused_locally(self, self.proxy, "GetRawBlob", "0.2.8", lambda: self.proxy.get_raw_blob(self.img, digest))

    def test_each_layer(self) -> None:
        for layer in self.image.layers:
            if self.proxy.supports("GetRawBlob"):
                with self.proxy.get_raw_blob(self.img, layer.digest) as f:
                    self.assertEqual(f.read(), layer.blob)
                self.assertIn(f.size, (layer.size, -1))
            else:
                self.refused(layer.digest)
                # The verified path still hands out the same bytes.
                with self.proxy.get_blob(self.img, layer.digest, layer.size) as f:
                    self.assertEqual(f.read(), layer.blob)

    def test_leaving_early_is_not_an_error(self) -> None:
        big = FIXTURE.big
        if self.proxy.supports("GetRawBlob"):
            with self.proxy.get_raw_blob(self.img, big.digest) as f:
                self.assertEqual(f.read(5), big.blob[:5])
        else:
            self.refused(big.digest)
        self.assert_in_step()

    def test_unknown_digest_fails(self) -> None:
        missing = ocibuild.sha256_digest(b"absent")
        if not self.proxy.supports("GetRawBlob"):
            # Refused for its version before the proxy could look the digest up.
            self.refused(missing)
            self.assert_in_step()
            return
        with self.assertRaises(ProxyError) as caught:
            with self.proxy.get_raw_blob(self.img, missing) as f:
                f.read()
        self.assertNotIsInstance(caught.exception, UnsupportedMethodError)


if __name__ == "__main__":
    unittest.main()
