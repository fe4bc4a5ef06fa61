"""Set-up for the protocol 1.0 tests: which wires the proxy under test speaks, a multi-arch
index fixture, Debian's docker-registry with an image pushed by skopeo, a running
`layerpipe serve --listen unix:PATH`, and a registry that accepts connections and never answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from typing import Any, Callable, Dict, List, Optional

import support
from support import ocibuild

from layerpipe import ImageProxy, ProxyError, RpcError

REGISTRY_BINARY = "/usr/bin/docker-registry"


def skip_or_fail(message: str) -> None:
    """Skips on a developer's machine; under CI=true a missing part is a failure."""
    if os.environ.get("CI") == "true":
        raise AssertionError(message)
    raise unittest.SkipTest(message)


def command_1_0() -> List[str]:
    """The proxy under test when it speaks 1.0: skopeo has no 1.0, so the 1.0 tests skip
    there (even under CI); a layerpipe without 1.0 skips (fails under CI=true)."""
    argv = support.proxy_command()
    if os.path.basename(argv[0]) == "skopeo":
        raise unittest.SkipTest("skopeo speaks only the 0.2.x wire")
    try:
        with ImageProxy(argv, protocol="1.0", shutdown_timeout=20):
            pass
    except ProxyError as e:
        skip_or_fail(f"{argv[0]} does not serve protocol 1.0 yet: {e}")
    return argv


def require_stdio(argv: List[str], args: List[str]) -> None:
    """Skips when `serve --stdio` does not exit 0 at end of input (a server branch not merged yet)."""
    done = subprocess.run([*argv, "serve", "--stdio", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    if done.returncode != 0:
        skip_or_fail(f"{argv[0]} has no `serve --stdio`: {done.stderr.decode(errors='replace').strip()[:200]}")


def start_1_0(make: Callable[[], Any]) -> Any:
    """A started 1.0 proxy; skips when the server does not offer the payload asked for."""
    try:
        return make()
    except RpcError as e:
        if "payloads" in str(e):
            skip_or_fail(f"the server does not offer this payload yet: {e}")
        raise


def write_index(layout: str, ref: str, platforms: Dict[str, ocibuild.Image]) -> bytes:
    """An OCI index under `ref` whose instances are images already in `layout`, keyed "os/arch"."""
    manifests = []
    for key, image in platforms.items():
        os_name, arch = key.split("/")
        manifests.append({
            "mediaType": ocibuild.OCI_MANIFEST,
            "digest": image.manifest_digest,
            "size": len(image.manifest),
            "platform": {"os": os_name, "architecture": arch},
        })
    index_bytes = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}).encode()
    digest = ocibuild.sha256_digest(index_bytes)
    with open(ocibuild.blob_path(layout, digest), "wb") as f:
        f.write(index_bytes)
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    top["manifests"].append({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": len(index_bytes),
        "annotations": {ocibuild.REF_NAME: ref},
    })
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)
    return index_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry (distribution 2.8) on a free loopback port, plain HTTP, no auth."""

    def __init__(self) -> None:
        if not os.access(REGISTRY_BINARY, os.X_OK):
            skip_or_fail(f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)")
        support.require_skopeo()
        self.dir = tempfile.mkdtemp(prefix="layerpipe-py-registry-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {
            "version": "0.1",
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "layerpipe-test-secret"},
        }
        config_path = os.path.join(self.dir, "config.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)  # YAML is a superset of JSON
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", config_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise AssertionError("docker-registry did not start")
                time.sleep(0.1)

    def push(self, source: str, repo_and_tag: str, *extra: str) -> str:
        """Copies `source` (oci:LAYOUT:REF) into the registry; returns its docker:// reference."""
        ref = f"docker://{self.host}/{repo_and_tag}"
        support.skopeo_copy(source, ref, "--dest-tls-verify=false", "--preserve-digests", *extra)
        return ref

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    """`layerpipe serve --listen unix:PATH ARGS...`, stopped with SIGTERM (it must exit 0)."""

    def __init__(self, argv: List[str], args: List[str] = ()) -> None:  # type: ignore[assignment]
        self.dir = tempfile.mkdtemp(prefix="layerpipe-py-service-")
        self.path = os.path.join(self.dir, "proxy.sock")
        self.address = f"unix:{self.path}"
        self.stderr_path = os.path.join(self.dir, "stderr")
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen([*argv, "serve", "--listen", self.address, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                message = f"serve --listen did not create {self.path}: {self.stderr()[:500]}"
                self.stop()
                skip_or_fail(message)
            time.sleep(0.05)

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode


class StallingRegistry:
    """Accepts TCP connections and never answers; records when a client gives up on one.
    TLS handshakes are refused at once (not counted), so a client allowed plain HTTP falls
    back to it and waits on an HTTP request: the request in flight when it is cancelled."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self.closed = 0
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        # Every thread and socket, so that stop() closes them all before it returns: an fd
        # closed later by a stray thread could be one another test is handing to a child.
        self._threads: List[threading.Thread] = []
        self._conns: List[socket.socket] = []
        self._start(self._serve)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            self._start(self._hold, conn)

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"\x16":
                    return  # a TLS ClientHello: no HTTPS here
                self.accepted += 1
                while conn.recv(65536):
                    pass  # read the request, answer nothing
            except OSError:
                pass
            if not self._stop.is_set():
                self.closed += 1
                self.closed_by_client.set()

    def wait_for(self, condition: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(10)
        self.listener.close()
