"""Protocol 1.0 client parts that need no server: framing, dispatch by id, cancellation,
notification routing and credit accounting. The peer is this test on the other end of a real
SEQPACKET socketpair (or pipe), writing the JSON-RPC messages a server would."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import support  # noqa: F401  (puts the client on sys.path)

from layerpipe import ProxyError, RpcError
from layerpipe.connection import RpcConnection
from layerpipe.framing import SeqpacketChannel, StreamChannel, encode_frame, read_frame
from layerpipe.jsonrpc import CANCEL_REQUEST, MAX_MESSAGE_SIZE
from layerpipe.session1 import service_path
from layerpipe.transfers import StreamState, StreamTransferRaw, TransferRouter


class TestContentLengthFraming(unittest.TestCase):
    def test_round_trip_of_several_frames(self) -> None:
        bodies = [b"{}", json.dumps({"jsonrpc": "2.0", "id": 1, "result": "\u00e9"}).encode(), b"x" * 70000]
        stream = io.BufferedReader(io.BytesIO(b"".join(encode_frame(b) for b in bodies)), 10)
        self.assertEqual([read_frame(stream) for _ in bodies], bodies)
        self.assertIsNone(read_frame(stream))

    def test_other_headers_are_ignored_and_case_does_not_matter(self) -> None:
        raw = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: 2\r\n\r\n{}"
        self.assertEqual(read_frame(io.BytesIO(raw)), b"{}")

    def test_broken_frames_are_errors(self) -> None:
        cases = {
            "no length": b"Content-Type: x\r\n\r\n{}",
            "bad length": b"Content-Length: 2x\r\n\r\n{}",
            "no colon": b"Content-Length 2\r\n\r\n{}",
            "cut body": b"Content-Length: 10\r\n\r\n{}",
            "cut header": b"Content-Length: 2\r\n",
            "too large": b"Content-Length: %d\r\n\r\n" % (MAX_MESSAGE_SIZE + 1),
            "endless header": b"X" * 5000,
        }
        for name, raw in cases.items():
            with self.subTest(name), self.assertRaises(ProxyError):
                read_frame(io.BytesIO(raw))

    def test_stream_channel_over_a_pipe(self) -> None:
        r, w = os.pipe()
        with os.fdopen(r, "rb") as incoming, os.fdopen(w, "wb") as outgoing:
            channel = StreamChannel(incoming, outgoing)
            channel.send(b'{"a":1}')
            self.assertEqual(channel.receive(), (b'{"a":1}', []))


class TestSeqpacketChannel(unittest.TestCase):
    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        self.channel = SeqpacketChannel(self.ours)

    def test_fds_ride_on_their_packet(self) -> None:
        r, w = os.pipe()
        socket.send_fds(self.theirs, [b'{"x":1}'], [r])
        os.close(r)
        data, fds = self.channel.receive()
        self.assertEqual((data, len(fds)), (b'{"x":1}', 1))
        os.write(w, b"hi")
        os.close(w)
        self.assertEqual(os.read(fds[0], 10), b"hi")
        os.close(fds[0])

    def test_oversized_packet_is_refused_then_the_next_is_read(self) -> None:
        self.theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MAX_MESSAGE_SIZE)
        try:
            self.theirs.send(b" " * (MAX_MESSAGE_SIZE + 10))
        except OSError as e:
            self.skipTest(f"this kernel caps SO_SNDBUF below a 1 MiB packet ({e})")
        self.theirs.send(b"{}")
        with self.assertRaises(ProxyError):
            self.channel.receive()
        self.assertEqual(self.channel.receive(), (b"{}", []))

    def test_end_of_file(self) -> None:
        self.theirs.close()
        with self.assertRaises(EOFError):
            self.channel.receive()


class TestServiceAddress(unittest.TestCase):
    def test_paths(self) -> None:
        self.assertEqual(service_path("unix:/run/x.sock"), "/run/x.sock")
        self.assertEqual(service_path("unix:", {"XDG_RUNTIME_DIR": "/run/user/7"}), "/run/user/7/layerpipe/layerpipe.sock")
        for bad, env in (("unix:", {}), ("tcp:1.2.3.4:5", {}), ("/run/x.sock", {})):
            with self.subTest(address=bad), self.assertRaises(ValueError):
                service_path(bad, env)


class ScriptedPeer:
    """The server's end of a socketpair, driven by the test."""

    def __init__(self, test: unittest.TestCase) -> None:
        ours, self.sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.connection = RpcConnection(SeqpacketChannel(ours), lambda cause: ProxyError(f"lost: {cause}"))
        self.connection.start()
        self.notifications: List[Any] = []
        self.connection.on_notification(lambda m, p: self.notifications.append((m, p)))
        test.addCleanup(self.close)
        self.sock.settimeout(10)

    def receive(self) -> Dict[str, Any]:
        return json.loads(self.sock.recv(MAX_MESSAGE_SIZE))

    def send(self, message: Dict[str, Any], fds: List[int] = ()) -> None:  # type: ignore[assignment]
        data = json.dumps({"jsonrpc": "2.0", **message}).encode()
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def close(self) -> None:
        self.sock.close()
        self.connection.join(5)
        self.connection.channel.close()


class TestDispatchById(unittest.TestCase):
    def test_answers_in_reverse_order_reach_their_callers(self) -> None:
        peer = ScriptedPeer(self)
        calls = [peer.connection.call_async("OpenImage", {"reference": f"ref-{i}"}) for i in range(32)]
        requests = [peer.receive() for _ in calls]
        self.assertEqual(len({r["id"] for r in requests}), 32)
        for request in reversed(requests):
            peer.send({"id": request["id"], "result": {"image": request["params"]["reference"]}})
        self.assertEqual([c.result(5)["image"] for c in calls], [f"ref-{i}" for i in range(32)])
        self.assertEqual(peer.connection.in_flight, 0)

    def test_many_threads_one_connection(self) -> None:
        peer = ScriptedPeer(self)

        def server() -> None:
            pending = [peer.receive() for _ in range(64)]
            # Odd ids first, then even: any order must do.
            for request in sorted(pending, key=lambda r: (r["id"] % 2 == 0, -r["id"])):
                peer.send({"id": request["id"], "result": {"echo": request["params"]["reference"]}})

        thread = threading.Thread(target=server)
        thread.start()
        # Every call is in flight before the first answer comes.
        with ThreadPoolExecutor(max_workers=64) as pool:
            got = list(pool.map(lambda i: peer.connection.call("OpenImage", {"reference": str(i)}, timeout=10), range(64)))
        thread.join()
        self.assertEqual([g["echo"] for g in got], [str(i) for i in range(64)])

    def test_error_objects_become_rpc_errors(self) -> None:
        peer = ScriptedPeer(self)
        call = peer.connection.call_async("OpenImage", {"reference": "x"})
        request = peer.receive()
        peer.send({"id": request["id"], "error": {"code": -32001, "message": "no such image", "data": {"error_code": "other", "kind": "LP_ERR_NOT_FOUND"}}})
        with self.assertRaises(RpcError) as caught:
            call.result(5)
        self.assertEqual((caught.exception.code, caught.exception.kind, caught.exception.error_code), (-32001, "LP_ERR_NOT_FOUND", "other"))
        self.assertIn("no such image", str(caught.exception))

    def test_timeout_sends_cancel_request_and_a_late_answer_is_orphaned(self) -> None:
        peer = ScriptedPeer(self)
        orphans: List[Any] = []
        call = peer.connection.call_async("OpenImage", {"reference": "slow"}, orphan=orphans.append)
        request = peer.receive()
        with self.assertRaises(ProxyError) as caught:
            call.result(0.2)
        self.assertTrue(caught.exception.retryable)
        cancel = peer.receive()
        self.assertEqual((cancel["method"], cancel["params"], "id" in cancel), (CANCEL_REQUEST, {"id": request["id"]}, False))
        peer.send({"id": request["id"], "result": {"image": 7}})
        # Something after it proves the late answer was read.
        probe = peer.connection.call_async("CloseImage", {"image": 1})
        peer.send({"id": peer.receive()["id"], "result": None})
        self.assertIsNone(probe.result(5))
        self.assertEqual(orphans, [{"image": 7}])

    def test_fds_on_an_answer_that_expects_none_are_closed_and_refused(self) -> None:
        peer = ScriptedPeer(self)
        r, w = os.pipe()
        call = peer.connection.call_async("CloseImage", {"image": 1})
        peer.send({"id": peer.receive()["id"], "result": None}, [r])
        os.close(r)
        with self.assertRaises(ProxyError):
            call.result(5)
        # Our copy of the read end was closed: the write end sees no reader.
        with self.assertRaises(BrokenPipeError):
            os.write(w, b"x")
        os.close(w)

    def test_loss_fails_every_pending_call(self) -> None:
        peer = ScriptedPeer(self)
        calls = [peer.connection.call_async("OpenImage", {"reference": "x"}) for _ in range(3)]
        peer.sock.close()
        for call in calls:
            with self.assertRaises(ProxyError) as caught:
                call.result(5)
            self.assertIn("lost", str(caught.exception))
        with self.assertRaises(ProxyError):
            peer.connection.call_async("OpenImage", {"reference": "x"})

    def test_notifications_and_server_requests(self) -> None:
        peer = ScriptedPeer(self)
        peer.send({"method": "transfer/progress", "params": {"transfer": 1, "bytes": 5, "total": 10}})
        peer.send({"id": 99, "method": "client/whatever", "params": {}})
        answer = peer.receive()
        self.assertEqual((answer["id"], answer["error"]["code"]), (99, -32601))
        self.assertEqual(peer.notifications, [("transfer/progress", {"transfer": 1, "bytes": 5, "total": 10})])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestCredit(unittest.TestCase):
    """The consumer grants exactly what it read, so the server's window never overflows."""

    def make(self, window: int, size: int):
        credits: List[int] = []
        finish = FinishedCall()
        state = StreamState(5, window)
        raw = StreamTransferRaw(state, lambda t, n: credits.append(n), size, "blob x", finish, lambda t: None, lambda t: None)
        return state, raw, credits

    def test_reads_grant_credit_and_bytes_arrive_in_order(self) -> None:
        window = 64 * 1024
        payload = os.urandom(10 * window)
        state, raw, credits = self.make(window, len(payload))
        granted = window
        sent = 0
        got = bytearray()
        # Play the server: send while credit allows, the consumer reads in odd-sized pieces.
        while len(got) < len(payload):
            while sent < min(granted, len(payload)):
                n = min(5000, granted - sent, len(payload) - sent)
                state.feed(b64(payload[sent : sent + n]))
                sent += n
            if sent == len(payload):
                state.end(None)
            buf = bytearray(7777)
            n = raw.readinto(buf)
            got += buf[:n]
            granted = window + sum(credits)
        self.assertEqual(bytes(got), payload)
        self.assertEqual(raw.readinto(bytearray(10)), 0)
        self.assertLessEqual(state.high_water, window)
        # Everything read was granted back except the last part under the threshold.
        self.assertLess(len(payload) - sum(credits), window // 4)
        self.assertTrue(all(c >= window // 4 for c in credits))

    def test_sending_past_the_window_is_an_error(self) -> None:
        state, raw, _ = self.make(64 * 1024, -1)
        state.feed(b64(b"x" * (64 * 1024)))
        state.feed(b64(b"y"))
        buf = bytearray(128 * 1024)
        while raw.readinto(buf):
            pass
        with self.assertRaises(ProxyError) as caught:
            raw.readinto(buf)
        self.assertIn("past", str(caught.exception))

    def test_end_error_comes_after_every_byte(self) -> None:
        state, raw, _ = self.make(64 * 1024, 6)
        state.feed(b64(b"abcdef"))
        state.end(RpcError("digest mismatch", -32004))
        # End of file first, so a buffered reader hands out every byte; then the error,
        # from the next read and from close().
        self.assertEqual(raw.read(6), b"abcdef")
        self.assertEqual(raw.read(1), b"")
        with self.assertRaises(RpcError) as caught:
            raw.read(1)
        self.assertEqual(caught.exception.code, -32004)
        with self.assertRaises(RpcError):
            raw.close()

    def test_router_routes_by_transfer_and_drops_unknown(self) -> None:
        router = TransferRouter()
        state = StreamState(3, 1024)
        progress: List[Any] = []
        router.add_stream(state)
        router.add_progress(3, lambda b, t: progress.append((b, t)))
        router.handle("transfer/data", {"transfer": 3, "data": b64(b"hi")})
        router.handle("transfer/data", {"transfer": 4, "data": b64(b"no")})
        router.handle("transfer/progress", {"transfer": 3, "bytes": 2, "total": 2})
        router.handle("transfer/end", {"transfer": 3})
        self.assertEqual(state.take(memoryview(bytearray(10))), 2)
        self.assertEqual(state.take(memoryview(bytearray(10))), 0)
        self.assertEqual((progress, router.dropped), ([(2, 2)], 1))


class FinishedCall:
    """Stands in for a FinishTransfer that answered null."""

    def done(self) -> bool:
        return True

    def result(self, timeout=None) -> None:
        return None


if __name__ == "__main__":
    unittest.main()
