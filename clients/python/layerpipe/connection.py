"""A JSON-RPC 2.0 connection shared by many threads.

Any thread sends (under one send lock); one reader thread receives every message and
dispatches it: a response to the call waiting on its id (in any order), a notification to
the handler the owner installed. So calls from several threads are truly concurrent: a slow
OpenImage holds up nothing else.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Dict, List, Mapping, Optional

from .errors import RETRYABLE, ProxyError, RpcError
from .framing import close_fds
from .jsonrpc import CANCEL_REQUEST, ERROR_CODES, MAX_MESSAGE_SIZE

# Called in the reader thread with a call's result and fds; what it returns is the call's value.
ResultHook = Callable[[Any, List[int]], Any]
# Called in the reader thread with a result that nobody waits for any more (timed out).
OrphanHook = Callable[[Any], None]
NotificationHandler = Callable[[str, Any], None]


def _set_exception(future: "Future[Any]", error: BaseException) -> None:
    try:
        future.set_exception(error)
    except InvalidStateError:
        pass  # cancelled by the client meanwhile


def _no_fds_expected(result: Any, fds: List[int]) -> Any:
    if fds:
        close_fds(fds)
        raise ProxyError(f"a response without data carried {len(fds)} file descriptors")
    return result



# After a failed send, how long to wait for the reader thread to say why the peer went away.
SEND_FAILURE_WAIT_SECONDS = 5.0

class PendingCall:
    """A request sent and not yet answered. result() waits; cancel() sends $/cancelRequest;
    abandon() also stops waiting."""

    def __init__(self, connection: "RpcConnection", request_id: int, method: str, hook: ResultHook, orphan: Optional[OrphanHook]) -> None:
        self.connection = connection
        self.id = request_id
        self.method = method
        self.hook = hook
        self.orphan = orphan
        self.future: "Future[Any]" = Future()
        self.abandoned = False

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: Optional[float] = None) -> Any:
        """The call's value; ProxyError (RpcError for an error response). After `timeout`
        seconds the call is abandoned (see abandon()) and a retryable ProxyError raised."""
        try:
            return self.future.result(timeout)
        except FutureTimeout:
            self.abandon()
            raise ProxyError(f"{self.method}: no answer within {timeout} s; request cancelled", RETRYABLE) from None

    def cancel(self) -> None:
        """Asks the server to abort this request ($/cancelRequest). The answer still comes:
        an RpcError with code -32800 (`.cancelled`), or the result if it was already on its way."""
        if self.future.done():
            return
        try:
            self.connection.notify(CANCEL_REQUEST, {"id": self.id})
        except ProxyError:
            pass  # the connection is gone: the call fails anyway

    def abandon(self) -> None:
        """cancel(), and fail the call now without waiting for the server; a late answer is
        cleaned up (fds closed, an orphaned transfer or image released) and nobody sees it."""
        if self.future.done():
            return
        self.abandoned = True
        self.cancel()
        try:
            self.future.set_exception(RpcError(f"{self.method}: cancelled by the client", ERROR_CODES["Cancelled"]))
        except InvalidStateError:
            # The answer won the race: nobody will take it, so release what it holds.
            if self.orphan is not None and self.future.exception() is None:
                self.orphan(self.future.result())


class RpcConnection:
    """`channel` is a framing.SeqpacketChannel or StreamChannel. `describe_loss(cause)` makes
    the error every pending call gets when the connection ends (with the server's exit status)."""

    def __init__(self, channel: Any, describe_loss: Callable[[BaseException], ProxyError]) -> None:
        self.channel = channel
        self._describe_loss = describe_loss
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: Dict[int, PendingCall] = {}
        self._next_id = 1
        self._lost: Optional[ProxyError] = None
        self._notification_handlers: List[NotificationHandler] = []
        self._loss_handlers: List[Callable[[ProxyError], None]] = []
        # Server messages this client could not use (for diagnostics and tests).
        self.protocol_errors: List[str] = []
        self._reader = threading.Thread(target=self._read_loop, name="layerpipe-rpc-reader", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def on_notification(self, handler: NotificationHandler) -> None:
        self._notification_handlers.append(handler)

    def on_loss(self, handler: Callable[[ProxyError], None]) -> None:
        self._loss_handlers.append(handler)

    # -- sending -------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE_SIZE:
            raise ProxyError(f"{message.get('method')}: a {len(data)}-byte message exceeds {MAX_MESSAGE_SIZE}")
        with self._send_lock:
            if self._lost is not None:
                raise self._lost
            try:
                self.channel.send(data)
                return
            except (OSError, ValueError) as e:
                failure = e
        # The peer is gone. The reader thread is about to learn how (its exit status, a signal),
        # which says more than EPIPE: wait for it a moment and raise that.
        self.join(SEND_FAILURE_WAIT_SECONDS)
        if self._lost is not None:
            raise self._lost
        raise ProxyError(f"{message.get('method')}: cannot send: {failure}")

    def call_async(self, method: str, params: Optional[Mapping[str, Any]], hook: Optional[ResultHook] = None, orphan: Optional[OrphanHook] = None) -> PendingCall:
        with self._state_lock:
            if self._lost is not None:
                raise self._lost
            request_id = self._next_id
            self._next_id += 1
            pending = PendingCall(self, request_id, method, hook or _no_fds_expected, orphan)
            # Registered before sending: the answer may arrive before send() returns.
            self._pending[request_id] = pending
        message: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = dict(params)
        try:
            self._send(message)
        except BaseException:
            with self._state_lock:
                self._pending.pop(request_id, None)
            raise
        return pending

    def call(self, method: str, params: Optional[Mapping[str, Any]], timeout: Optional[float] = None, hook: Optional[ResultHook] = None, orphan: Optional[OrphanHook] = None) -> Any:
        return self.call_async(method, params, hook, orphan).result(timeout)

    def notify(self, method: str, params: Mapping[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": dict(params)})

    @property
    def in_flight(self) -> int:
        with self._state_lock:
            return len(self._pending)

    # -- receiving -----------------------------------------------------------

    def _read_loop(self) -> None:
        cause: BaseException = EOFError("the connection ended")
        try:
            while True:
                data, fds = self.channel.receive()
                self._dispatch(data, fds)
        except BaseException as e:  # EOFError, OSError, a framing ProxyError: the connection is over
            cause = e
        self._fail_everything(cause)

    def _dispatch(self, data: bytes, fds: List[int]) -> None:
        try:
            message = json.loads(data)
        except ValueError as e:
            close_fds(fds)
            self.protocol_errors.append(f"not JSON: {e}")
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            close_fds(fds)
            if isinstance(message, dict) and "success" in message and "pipeid" in message:
                # A 0.2.x reply (skopeo, or a layerpipe before 1.0): nothing here will ever answer.
                raise ProxyError("the server answered in the 0.2.x wire: it does not speak protocol 1.0")
            self.protocol_errors.append(f"not a JSON-RPC 2.0 message: {str(message)[:200]}")
            return
        if "method" in message:
            close_fds(fds)
            if "id" in message:
                self._refuse_server_request(message)
            else:
                for handler in self._notification_handlers:
                    handler(message["method"], message.get("params"))
            return
        self._settle(message, fds)

    def _refuse_server_request(self, message: Dict[str, Any]) -> None:
        error = {"code": ERROR_CODES["MethodNotFound"], "message": f"the client serves no {message.get('method')!r}"}
        try:
            self._send({"jsonrpc": "2.0", "id": message["id"], "error": error})
        except ProxyError:
            pass

    def _settle(self, message: Dict[str, Any], fds: List[int]) -> None:
        request_id = message.get("id")
        with self._state_lock:
            pending = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if pending is None:
            close_fds(fds)
            self.protocol_errors.append(f"a response to no pending request: {str(message)[:200]}")
            return
        if "error" in message:
            close_fds(fds)
            _set_exception(pending.future, RpcError.from_object(pending.method, message["error"]))
            return
        try:
            value = pending.hook(message.get("result"), fds)
        except ProxyError as e:
            _set_exception(pending.future, e)
            return
        try:
            if pending.abandoned:
                raise InvalidStateError("abandoned")
            pending.future.set_result(value)
        except InvalidStateError:
            if pending.orphan is not None:
                pending.orphan(value)

    def _fail_everything(self, cause: BaseException) -> None:
        error = self._describe_loss(cause)
        with self._state_lock:
            self._lost = error
            pending, self._pending = list(self._pending.values()), {}
        for call in pending:
            _set_exception(call.future, error)
        for handler in self._loss_handlers:
            handler(error)

    # -- ending --------------------------------------------------------------

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stops the channel and waits for the reader thread to see the end."""
        self.channel.stop()
        self.join(timeout)

    def join(self, timeout: Optional[float] = None) -> None:
        if self._reader.is_alive() and threading.current_thread() is not self._reader:
            self._reader.join(timeout)

    @property
    def lost(self) -> Optional[ProxyError]:
        return self._lost

