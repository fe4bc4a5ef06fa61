"""dir: images, made by `skopeo copy` from the OCI fixture, read through ImageProxy."""

from __future__ import annotations

import json
import os
import unittest

import support
from support import ocibuild

from layerpipe import ImageProxy

FIXTURE: support.Fixture


def setUpModule() -> None:
    global FIXTURE
    support.proxy_command()
    FIXTURE = support.Fixture()


def tearDownModule() -> None:
    FIXTURE.cleanup()


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
