"""Every ImageProxy method against a real proxy (skopeo or layerpipe)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unittest

import support
from support import ocibuild

from layerpipe import ImageProxy, OpenedImage, ProxyError, UnsupportedMethodError

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

    def require(self, method: str) -> None:
        if not self.proxy.supports(method):
            self.skipTest(f"{method} is newer than this proxy's protocol {self.proxy.protocol_version}")


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
        self.require("GetLayerInfo")
        info = self.proxy.get_layer_info(self.img)
        expected = [{"digest": l.digest, "size": l.size, "media_type": l.media_type} for l in self.image.layers]
        self.assertEqual([{k: d[k] for k in ("digest", "size", "media_type")} for d in info], expected)

    def test_get_layer_info_on_old_proxy_is_a_clear_error(self) -> None:
        if self.proxy.supports("GetLayerInfo"):
            self.skipTest("proxy has GetLayerInfo")
        with self.assertRaises(UnsupportedMethodError) as caught:
            self.proxy.get_layer_info(self.img)
        self.assertIn("0.2.5", str(caught.exception))
        self.assertIn(self.proxy.protocol_version, str(caught.exception))

    def test_open_image_optional(self) -> None:
        self.require("OpenImageOptional")
        self.assertIsNone(self.proxy.open_image_optional(f"oci:{FIXTURE.layout}:no-such-ref"))
        found = self.proxy.open_image_optional(self.image.imageref)
        self.assertIsNotNone(found)
        assert found is not None
        self.assertEqual(self.proxy.get_manifest(found)[1], self.image.manifest)

    def test_open_image_optional_still_fails_on_bad_references(self) -> None:
        self.require("OpenImageOptional")
        with self.assertRaises(ProxyError):
            self.proxy.open_image_optional("no-such-transport:whatever")

    def test_methods_newer_than_the_proxy_raise_before_sending(self) -> None:
        if self.proxy.supports("OpenImageOptional"):
            self.skipTest(f"proxy {self.proxy.protocol_version} has every 0.2.4 method")
        with self.assertRaises(UnsupportedMethodError) as caught:
            self.proxy.open_image_optional(self.image.imageref)
        self.assertIn("0.2.4", str(caught.exception))
        with self.assertRaises(UnsupportedMethodError):
            self.proxy.get_raw_blob(self.img, self.image.layers[0].digest)
        # Nothing was sent, so the session is in step.
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)


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
    def setUp(self) -> None:
        super().setUp()
        self.require("GetRawBlob")

    def test_each_layer(self) -> None:
        for layer in self.image.layers:
            with self.proxy.get_raw_blob(self.img, layer.digest) as f:
                self.assertEqual(f.read(), layer.blob)
            self.assertIn(f.size, (layer.size, -1))

    def test_leaving_early_is_not_an_error(self) -> None:
        big = FIXTURE.big
        with self.proxy.get_raw_blob(self.img, big.digest) as f:
            self.assertEqual(f.read(5), big.blob[:5])
        self.assertEqual(self.proxy.get_manifest(self.img)[1], self.image.manifest)

    def test_unknown_digest_fails(self) -> None:
        missing = ocibuild.sha256_digest(b"absent")
        with self.assertRaises(ProxyError):
            with self.proxy.get_raw_blob(self.img, missing) as f:
                f.read()


class TestDirTransport(unittest.TestCase):
    """dir: images made by `skopeo copy` from the OCI layout."""

    @classmethod
    def setUpClass(cls) -> None:
        support.require_skopeo()
        cls.oci_dir = os.path.join(FIXTURE.root, "dir-oci")
        cls.docker_dir = os.path.join(FIXTURE.root, "dir-v2s2")
        if not os.path.exists(cls.oci_dir):
            support.skopeo_copy(FIXTURE.image.imageref, f"dir:{cls.oci_dir}")
            gz_only = ocibuild.write_image(os.path.join(FIXTURE.root, "gz-only"), FIXTURE.layers[:3])
            support.skopeo_copy(gz_only.imageref, f"dir:{cls.docker_dir}", "--format", "v2s2")

    def setUp(self) -> None:
        self.proxy = ImageProxy(command=support.proxy_command())
        self.proxy.start()
        self.addCleanup(self.proxy.close)

    def test_oci_dir_image(self) -> None:
        img = self.proxy.open_image(f"dir:{self.oci_dir}")
        digest, raw = self.proxy.get_manifest(img)
        with open(os.path.join(self.oci_dir, "manifest.json"), "rb") as f:
            stored = f.read()
        self.assertEqual(raw, stored)
        self.assertEqual(digest, ocibuild.sha256_digest(stored))
        big = FIXTURE.big
        with self.proxy.get_blob(img, big.digest, big.size) as blob:
            self.assertEqual(blob.read(), big.blob)
        self.assertEqual(self.proxy.get_full_config(img), FIXTURE.image.config)

    def test_docker_schema2_dir_is_converted_to_oci(self) -> None:
        img = self.proxy.open_image(f"dir:{self.docker_dir}")
        digest, raw = self.proxy.get_manifest(img)
        with open(os.path.join(self.docker_dir, "manifest.json"), "rb") as f:
            stored = f.read()
        self.assertEqual(json.loads(stored)["mediaType"], "application/vnd.docker.distribution.manifest.v2+json")
        # The digest names the stored Docker manifest; the bytes are its OCI form.
        self.assertEqual(digest, ocibuild.sha256_digest(stored))
        manifest = json.loads(raw)
        self.assertEqual(manifest["mediaType"], ocibuild.OCI_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], ocibuild.OCI_CONFIG)
        self.assertEqual({l["mediaType"] for l in manifest["layers"]}, {ocibuild.LAYER_GZIP})
        self.assertEqual([l["digest"] for l in manifest["layers"]], [l.digest for l in FIXTURE.layers[:3]])
        config = self.proxy.get_full_config(img)
        self.assertEqual(config["rootfs"]["diff_ids"], [l.diff_id for l in FIXTURE.layers[:3]])
        self.assertNotIn("container_config", config)
        layer = FIXTURE.layers[0]
        with self.proxy.get_blob(img, layer.digest, layer.size) as blob:
            self.assertEqual(blob.read(), layer.blob)


if __name__ == "__main__":
    unittest.main()
