"""Issue 14's proof for Python: every layer of a registry image (Debian's docker-registry,
image pushed by skopeo) pulled over protocol 1.0 on the socketpair, on `serve --stdio` and
through `serve --listen unix:`, with answers identical to the 0.2.x client's; and several
threads pulling at once on one connection."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import support
import support1
from support import ocibuild

from layerpipe import ImageProxy, connect

ARGV: List[str] = []
ARGS = ["--insecure-policy", "--tls-verify=false"]
FIXTURE: support.Fixture
REGISTRY: support1.Registry
REF = ""
MULTI_REF = ""
OLD: Dict[str, Any] = {}


def pull_everything(proxy: Any, ref: str) -> Dict[str, Any]:
    """What a client pulling an image sees: manifest, configs, layer list, every layer's bytes."""
    img = proxy.open_image(ref)
    try:
        layers = proxy.get_layer_info(img)
        blobs = {}
        raw = {}
        for layer in layers:
            with proxy.get_blob(img, layer["digest"], layer["size"]) as f:
                blobs[layer["digest"]] = f.read()
            with proxy.get_raw_blob(img, layer["digest"]) as f:
                raw[layer["digest"]] = hashlib.sha256(f.read()).hexdigest()
        return {
            "manifest": tuple(proxy.get_manifest(img)),
            "config": proxy.get_config(img),
            "full_config": proxy.get_full_config(img),
            "layers": layers,
            "blobs": blobs,
            "raw": raw,
        }
    finally:
        proxy.close_image(img)


def setUpModule() -> None:
    global FIXTURE, REGISTRY, REF, MULTI_REF
    ARGV[:] = support1.command_1_0()
    FIXTURE = support.Fixture()
    multi = {f"linux/{a}": ocibuild.write_image(FIXTURE.layout, FIXTURE.layers[:2], ref=f"only-{a}", config_extra={"architecture": a}) for a in ("amd64", "arm64")}
    support1.write_index(FIXTURE.layout, "multi", multi)
    REGISTRY = support1.Registry()
    REF = REGISTRY.push(f"oci:{FIXTURE.layout}:latest", "py/fixture:v1")
    REGISTRY.push(f"oci:{FIXTURE.layout}:latest", "py/fixture:v2")
    MULTI_REF = REGISTRY.push(f"oci:{FIXTURE.layout}:multi", "py/multi:latest", "--all")
    with ImageProxy(ARGV, ARGS) as old:
        OLD.update(pull_everything(old, REF))


def tearDownModule() -> None:
    REGISTRY.stop()
    FIXTURE.cleanup()


class RegistryPull:
    def check_same_as_0_2(self, proxy: Any) -> None:
        got = pull_everything(proxy, REF)
        self.assertEqual(got["layers"], OLD["layers"])  # type: ignore[attr-defined]
        self.assertEqual(len(got["blobs"]), len(FIXTURE.layers))  # type: ignore[attr-defined]
        for digest, data in got["blobs"].items():
            self.assertEqual(ocibuild.sha256_digest(data), digest)  # type: ignore[attr-defined]
        self.assertEqual(got, OLD)  # type: ignore[attr-defined]

    def check_concurrent_pulls(self, proxy: Any) -> None:
        def run(_: int) -> bool:
            return pull_everything(proxy, REF) == OLD

        def body() -> None:
            with ThreadPoolExecutor(max_workers=8) as pool:
                self.assertEqual(list(pool.map(run, range(8))), [True] * 8)  # type: ignore[attr-defined]

        support.run_with_deadline(self, 180, body)  # type: ignore[arg-type]

    def check_registry_extras(self, proxy: Any) -> None:
        tags = proxy.list_tags(REF.rsplit(":", 1)[0])
        self.assertEqual(sorted(tags), ["v1", "v2"])  # type: ignore[attr-defined]
        img = proxy.open_image(MULTI_REF)
        try:
            instances = proxy.list_instances(img)
            self.assertEqual(sorted(i["platform"]["architecture"] for i in instances), ["amd64", "arm64"])  # type: ignore[attr-defined]
            arm = next(i for i in instances if i["platform"]["architecture"] == "arm64")
            self.assertEqual(proxy.get_manifest(img, platform="linux/arm64").digest, arm["digest"])  # type: ignore[attr-defined]
            raw = proxy.get_manifest(img, raw=True)
            self.assertEqual(raw.media_type, "application/vnd.oci.image.index.v1+json")  # type: ignore[attr-defined]
            self.assertEqual(raw.digest, ocibuild.sha256_digest(raw.data))  # type: ignore[attr-defined]
        finally:
            proxy.close_image(img)
        # Resuming a blob: a Range request to the registry.
        big = FIXTURE.big
        img = proxy.open_image(REF)
        try:
            with proxy.get_raw_blob(img, big.digest, offset=big.size // 2) as f:
                self.assertEqual(f.read(), big.blob[big.size // 2 :])  # type: ignore[attr-defined]
            with proxy.get_raw_blob(img, big.digest, offset=100, length=1000) as f:
                self.assertEqual(f.read(), big.blob[100:1100])  # type: ignore[attr-defined]
        finally:
            proxy.close_image(img)


class TestSocketpair(RegistryPull, unittest.TestCase):
    def setUp(self) -> None:
        self.proxy = ImageProxy(ARGV, ARGS, protocol="1.0")
        self.proxy.start()
        self.addCleanup(self.proxy.close)

    def test_same_as_0_2(self) -> None:
        self.assertEqual(self.proxy.payload, "fd")
        self.check_same_as_0_2(self.proxy)

    def test_concurrent_pulls(self) -> None:
        self.check_concurrent_pulls(self.proxy)

    def test_tags_instances_ranges(self) -> None:
        self.check_registry_extras(self.proxy)


class TestStdio(RegistryPull, unittest.TestCase):
    PAYLOADS = ["fifo"]

    def setUp(self) -> None:
        support1.require_stdio(ARGV, ARGS)
        self.proxy = support1.start_1_0(lambda: ImageProxy(ARGV, ARGS, protocol="1.0", wire="stdio", payloads=self.PAYLOADS).__enter__())
        self.addCleanup(self.proxy.close)

    def test_same_as_0_2(self) -> None:
        self.assertEqual(self.proxy.payload, self.PAYLOADS[0])
        self.check_same_as_0_2(self.proxy)

    def test_concurrent_pulls(self) -> None:
        self.check_concurrent_pulls(self.proxy)

    def test_tags_instances_ranges(self) -> None:
        self.check_registry_extras(self.proxy)


class TestStdioStream(TestStdio):
    PAYLOADS = ["stream"]


class TestService(RegistryPull, unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.service = support1.Service(ARGV, ARGS)

    @classmethod
    def tearDownClass(cls) -> None:
        stderr = cls.service.stderr()
        assert cls.service.stop() == 0, stderr

    def setUp(self) -> None:
        self.proxy = connect(self.service.address)
        self.addCleanup(self.proxy.close)

    def test_same_as_0_2(self) -> None:
        self.assertEqual(self.proxy.payload, "fd")
        self.check_same_as_0_2(self.proxy)

    def test_concurrent_pulls(self) -> None:
        self.check_concurrent_pulls(self.proxy)

    def test_tags_instances_ranges(self) -> None:
        self.check_registry_extras(self.proxy)

    def test_two_clients_one_killed_mid_transfer(self) -> None:
        """A connection dropped with a transfer half-read leaves the other client unharmed."""
        victim = connect(self.service.address)
        img = victim.open_image(REF)
        f = victim.get_blob(img, FIXTURE.big.digest, FIXTURE.big.size)
        self.assertEqual(f.read(4096), FIXTURE.big.blob[:4096])
        # Drop the connection without a word, as a killed process would.
        victim._endpoint.channel.stop()  # type: ignore[attr-defined]
        self.check_same_as_0_2(self.proxy)
        f.raw.abandon()
        try:
            f.close()
        except Exception:
            pass
        victim.close()


class TestExampleProgram(unittest.TestCase):
    """examples/pull_layers.py, run as a user would, on each wire: every layer lands verified."""

    def test_pull_layers_on_every_wire(self) -> None:
        support1.require_stdio(ARGV, ARGS)
        service = support1.Service(ARGV, ARGS)
        self.addCleanup(service.stop)
        program = os.path.join(os.path.dirname(support.HERE), "examples", "pull_layers.py")
        env = dict(os.environ, LAYERPIPE=ARGV[0])
        for via in ("socketpair", "stdio", service.address):
            with self.subTest(via=via), tempfile.TemporaryDirectory() as out:
                flags = [f"--proxy-arg={a}" for a in ARGS]
                done = subprocess.run([sys.executable, program, "--via", via, *flags, REF, out], env=env, capture_output=True, text=True, timeout=120)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertIn(OLD["manifest"][0], done.stdout)
                for layer in FIXTURE.layers:
                    with open(os.path.join(out, layer.digest.split(":", 1)[1]), "rb") as f:
                        self.assertEqual(ocibuild.sha256_digest(f.read()), layer.digest)


if __name__ == "__main__":
    unittest.main()
