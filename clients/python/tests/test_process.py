"""The proxy process: how it is started, how it ends, and that it dies with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

import support

from layerpipe import ImageProxy, ProxyError, ProxyExitError

FIXTURE: support.Fixture


def setUpModule() -> None:
    global FIXTURE
    support.proxy_command()
    FIXTURE = support.Fixture()


def tearDownModule() -> None:
    FIXTURE.cleanup()


def process_state(pid: int) -> str:
    """'gone', 'Z' (zombie) or another /proc state letter."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


class TestProcess(unittest.TestCase):
    def test_clean_shutdown_exits_zero(self) -> None:
        proxy = ImageProxy(command=support.proxy_command())
        with proxy:
            self.assertIsNotNone(proxy.pid)
            proxy.get_manifest(proxy.open_image(FIXTURE.image.imageref))
        self.assertEqual(proxy.returncode, 0)
        with self.assertRaises(ProxyError):
            proxy.open_image(FIXTURE.image.imageref)

    def test_close_twice_is_harmless(self) -> None:
        proxy = ImageProxy(command=support.proxy_command())
        proxy.start()
        proxy.close()
        proxy.close()
        self.assertEqual(proxy.returncode, 0)

    def test_socket_at_another_fd(self) -> None:
        for fd in (3, 7, 42):
            with self.subTest(sockfd=fd):
                with ImageProxy(command=support.proxy_command(), sockfd=fd) as proxy:
                    self.assertIn("--sockfd", proxy.argv)
                    img = proxy.open_image(FIXTURE.image.imageref)
                    self.assertEqual(proxy.get_manifest(img)[1], FIXTURE.image.manifest)
                self.assertEqual(proxy.returncode, 0)

    def test_flags_after_the_subcommand(self) -> None:
        with ImageProxy(command=support.proxy_command(), args=["--tls-verify=false"]) as proxy:
            self.assertEqual(proxy.argv[-2:], ["experimental-image-proxy", "--tls-verify=false"])
            proxy.open_image(FIXTURE.image.imageref)

    def test_unknown_flag_reports_the_proxy_stderr(self) -> None:
        with self.assertRaises(ProxyExitError) as caught:
            with ImageProxy(command=support.proxy_command(), args=["--no-such-flag-xyz"]):
                pass
        self.assertIn("no-such-flag-xyz", caught.exception.stderr)
        self.assertIn("no-such-flag-xyz", str(caught.exception))
        self.assertNotEqual(caught.exception.returncode, 0)

    def test_missing_program_is_a_proxy_error(self) -> None:
        with self.assertRaises(ProxyError) as caught:
            ImageProxy(command=["/nonexistent/layerpipe-xyz"]).start()
        self.assertIn("/nonexistent/layerpipe-xyz", str(caught.exception))

    def test_non_zero_exit_is_reported_with_stderr(self) -> None:
        # A program that is not a proxy at all: reads the request, complains, exits 3.
        script = "import sys; sys.stdin.buffer.read1(100); sys.stderr.write('not a proxy, sorry\\n'); sys.exit(3)"
        with self.assertRaises(ProxyExitError) as caught:
            ImageProxy(command=[sys.executable, "-c", script]).start()
        self.assertEqual(caught.exception.returncode, 3)
        self.assertIn("not a proxy, sorry", str(caught.exception))

    def _orphan_proxy(self, die_with_parent: bool) -> str:
        """Starts a client that starts a proxy, kills the client with SIGKILL and
        returns the proxy's state afterwards. A helper process keeps the client's
        socket end open, so the proxy cannot merely notice EOF and leave."""
        client = textwrap.dedent(
            f"""
            import subprocess, sys, time
            sys.path[:0] = {sys.path[:2]!r}
            from layerpipe import ImageProxy
            proxy = ImageProxy(command={support.proxy_command()!r}, die_with_parent={die_with_parent!r})
            proxy.start()
            holder = subprocess.Popen(["sleep", "600"], pass_fds=[proxy._sock.fileno()])
            print(proxy.pid, holder.pid, flush=True)
            time.sleep(600)
            """
        )
        parent = subprocess.Popen([sys.executable, "-c", client], stdout=subprocess.PIPE)
        pids = []
        try:
            assert parent.stdout is not None
            pids = [int(p) for p in parent.stdout.readline().split()]
            proxy_pid = pids[0]
            self.assertNotIn(process_state(proxy_pid), ("gone", "Z"))
            parent.send_signal(signal.SIGKILL)
            parent.wait()
            deadline = time.monotonic() + (20 if die_with_parent else 2)
            while process_state(proxy_pid) not in ("gone", "Z") and time.monotonic() < deadline:
                time.sleep(0.05)
            return process_state(proxy_pid)
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            if parent.stdout:
                parent.stdout.close()

    def test_proxy_dies_with_its_parent(self) -> None:
        self.assertIn(self._orphan_proxy(die_with_parent=True), ("gone", "Z"))

    def test_without_die_with_parent_the_proxy_outlives_it(self) -> None:
        # The control for the test above: the same setup keeps the proxy alive.
        self.assertNotIn(self._orphan_proxy(die_with_parent=False), ("gone", "Z"))

    def test_proxy_exits_when_the_client_only_closes_the_socket(self) -> None:
        proxy = ImageProxy(command=support.proxy_command())
        proxy.start()
        process = proxy._process
        assert process is not None
        with proxy._lock:
            sock, proxy._sock = proxy._sock, None
        assert sock is not None
        sock.close()
        self.assertEqual(process.wait(30), 0)
        proxy._closed = True


if __name__ == "__main__":
    unittest.main()
