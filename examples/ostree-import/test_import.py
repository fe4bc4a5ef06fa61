"""import.py end to end: a multi-layer image into a fresh ostree repo, read back with `ostree cat`.

Run from the repository root: python3 -m unittest discover -s examples/ostree-import -v
(LAYERPIPE_PROXY_COMMAND picks the proxy; default skopeo.)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import unittest
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
IMPORT = os.path.join(HERE, "import.py")
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python", "tests"))

import ocibuild  # noqa: E402
import support  # noqa: E402

from layerpipe import ImageProxy  # noqa: E402

ROOT = ""
IMAGE: ocibuild.Image
TOOL = os.urandom(300 * 1024)
BLOB = os.urandom(2 * 1024 * 1024)


def zstd_or_gzip() -> str:
    return ocibuild.LAYER_ZSTD if shutil.which("zstd") else ocibuild.LAYER_GZIP


def setUpModule() -> None:
    global ROOT, IMAGE
    support.proxy_command()
    if shutil.which("ostree") is None:
        message = "ostree is needed (apt-get install ostree)"
        if os.environ.get("CI") == "true":
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    import tempfile

    ROOT = tempfile.mkdtemp(prefix="ostree-import-test-")
    D = ocibuild.DIRECTORY
    layers = [
        ocibuild.make_layer({
            "etc": D, "etc/os-release": b"VERSION=1\n", "etc/removed": b"bye\n",
            "usr": D, "usr/bin": D, "usr/bin/tool": TOOL,
            "usr/lib": D, "usr/lib/opaque": D, "usr/lib/opaque/old1": b"old one", "usr/lib/opaque/old2": b"old two",
        }),
        ocibuild.make_layer({
            "etc": D, "etc/os-release": b"VERSION=2\n", "etc/.wh.removed": b"",
            "data": D, "data/blob.bin": BLOB,
        }, zstd_or_gzip()),
        ocibuild.make_layer({
            "usr": D, "usr/lib": D, "usr/lib/opaque": D,
            "usr/lib/opaque/.wh..wh..opq": b"", "usr/lib/opaque/new": b"new file",
        }, ocibuild.LAYER_TAR),
        ocibuild.make_layer({"usr": D, "usr/lib": D, "usr/lib/opaque": D, "usr/lib/opaque/old1": b"reborn"}),
    ]  # fmt: skip
    IMAGE = ocibuild.write_image(os.path.join(ROOT, "layout"), layers)


def tearDownModule() -> None:
    if ROOT:
        shutil.rmtree(ROOT, ignore_errors=True)


class TestImport(unittest.TestCase):
    def setUp(self) -> None:
        self.repo = os.path.join(ROOT, f"repo-{self._testMethodName}")
        subprocess.run(["ostree", "init", f"--repo={self.repo}", "--mode=bare-user"], check=True)

    def run_import(self, imageref: str, *extra: str) -> subprocess.CompletedProcess:
        proxy = shlex.join(support.proxy_command())
        return subprocess.run(
            [sys.executable, IMPORT, "--repo", self.repo, "--branch", "test/image", imageref, "--proxy", proxy, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )

    def ostree(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ostree", *args, f"--repo={self.repo}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def cat(self, ref: str, path: str) -> bytes:
        result = self.ostree("cat", ref, path)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def exists(self, ref: str, path: str) -> bool:
        return self.ostree("ls", ref, path).returncode == 0

    def refs(self) -> List[str]:
        return sorted(self.ostree("refs").stdout.decode().split())

    def assert_merged_image(self, ref: str) -> None:
        self.assertEqual(self.cat(ref, "/etc/os-release"), b"VERSION=2\n")
        self.assertEqual(self.cat(ref, "/usr/bin/tool"), TOOL)
        self.assertEqual(self.cat(ref, "/data/blob.bin"), BLOB)
        self.assertEqual(self.cat(ref, "/usr/lib/opaque/new"), b"new file")
        self.assertEqual(self.cat(ref, "/usr/lib/opaque/old1"), b"reborn")
        # Whiteouts: deleted paths and the markers themselves are gone.
        for gone in ("/etc/removed", "/etc/.wh.removed", "/usr/lib/opaque/old2", "/usr/lib/opaque/.wh..wh..opq"):
            self.assertFalse(self.exists(ref, gone), gone)

    def test_import_stacks_layers_and_applies_whiteouts(self) -> None:
        result = self.run_import(IMAGE.imageref)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("total", result.stdout)
        self.assertEqual(self.refs(), ["test/image"] + [f"test/image-layer-{i}" for i in range(4)])
        self.assert_merged_image("test/image")
        # Each layer commit holds that layer as it is, whiteout markers included.
        self.assertEqual(self.cat("test/image-layer-0", "/etc/os-release"), b"VERSION=1\n")
        self.assertEqual(self.cat("test/image-layer-0", "/usr/lib/opaque/old2"), b"old two")
        self.assertTrue(self.exists("test/image-layer-1", "/etc/.wh.removed"))
        self.assertFalse(self.exists("test/image-layer-1", "/usr/bin/tool"))
        shown = self.ostree("show", "--print-metadata-key=ostree-import.manifest-digest", "test/image")
        self.assertEqual(shown.stdout.decode().strip(), f"'{IMAGE.manifest_digest}'")

    def proxy_has_raw_blobs(self) -> bool:
        with ImageProxy(command=support.proxy_command()) as proxy:
            return proxy.supports("GetRawBlob")

    def test_both_blob_methods(self) -> None:
        # auto takes GetRawBlob where the proxy has it (0.2.8), else GetBlob; verified is always GetBlob.
        has_raw = self.proxy_has_raw_blobs()
        raw = self.run_import(IMAGE.imageref, "--blob-method=raw")
        if has_raw:
            self.assertEqual(raw.returncode, 0, raw.stderr)
            self.assertIn("via GetRawBlob", raw.stdout)
            self.assert_merged_image("test/image")
        else:
            # Refused up front, before any layer is fetched: nothing lands in the repo.
            self.assertEqual(raw.returncode, 1, raw.stdout)
            self.assertRegex(raw.stderr, r"error: --blob-method=raw needs protocol 0\.2\.8; .* speaks 0\.2\.[3-7]\n")
            self.assertEqual(raw.stdout, "")
            self.assertEqual(self.refs(), [])
        auto = self.run_import(IMAGE.imageref)
        self.assertEqual(auto.returncode, 0, auto.stderr)
        self.assertIn("via GetRawBlob" if has_raw else "via GetBlob", auto.stdout)
        self.assert_merged_image("test/image")
        verified = self.run_import(IMAGE.imageref, "--blob-method=verified")
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assertIn("via GetBlob", verified.stdout)
        self.assert_merged_image("test/image")

    def test_reimport_moves_the_branch_forward(self) -> None:
        first = self.run_import(IMAGE.imageref)
        self.assertEqual(first.returncode, 0, first.stderr)
        before = self.ostree("rev-parse", "test/image").stdout.decode().strip()
        second = self.run_import(IMAGE.imageref, "--jobs=1")
        self.assertEqual(second.returncode, 0, second.stderr)
        after = self.ostree("rev-parse", "test/image").stdout.decode().strip()
        self.assertNotEqual(before, after)
        self.assertEqual(self.ostree("rev-parse", "test/image^").stdout.decode().strip(), before)
        self.assert_merged_image("test/image")

    def test_corrupted_layer_fails_without_refs(self) -> None:
        layout = os.path.join(ROOT, "corrupt-layout")
        if not os.path.exists(layout):
            shutil.copytree(IMAGE.layout, layout)
            victim = IMAGE.layers[1]
            garbage = bytearray(victim.blob)
            garbage[len(garbage) // 2] ^= 0x55
            with open(ocibuild.blob_path(layout, victim.digest), "wb") as f:
                f.write(garbage)
        result = self.run_import(f"oci:{layout}:latest")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("layer 1", result.stderr)
        self.assertNotIn("test/image", self.refs())
        self.assertNotIn("test/image-layer-1", self.refs())
        # The intact layers were imported and named.
        self.assertIn("test/image-layer-0", self.refs())

    def test_missing_image_fails(self) -> None:
        result = self.run_import(f"oci:{ROOT}/layout:no-such-tag")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("error:", result.stderr)
        self.assertEqual(self.refs(), [])


if __name__ == "__main__":
    unittest.main()
