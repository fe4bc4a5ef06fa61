"""Exceptions raised by the layerpipe client."""

from __future__ import annotations

from typing import Optional

# `error_code` values of the 0.2.8 wire; older proxies send none, which reads as OTHER.
EPIPE = "EPIPE"
RETRYABLE = "retryable"
OTHER = "other"
ERROR_CODES = (EPIPE, RETRYABLE, OTHER)


class ProxyError(Exception):
    """The proxy refused a request, failed a transfer, broke the protocol or died.

    `error_code` is the wire's classification: "EPIPE" (the proxy could not write to
    a pipe because our side closed it), "retryable" (a transient fault such as a
    timeout, a connection reset or a 5xx answer) or "other"; unknown codes read as "other".
    """

    def __init__(self, message: str, error_code: Optional[str] = OTHER) -> None:
        super().__init__(message)
        self.message = message
        # A code this client does not know (from a newer proxy) cannot be acted on.
        self.error_code = error_code if error_code in ERROR_CODES else OTHER

    @property
    def retryable(self) -> bool:
        return self.error_code == RETRYABLE

    @property
    def broken_pipe(self) -> bool:
        """True when the proxy failed because our read end was closed.

        Proxies older than 0.2.8 send no error_code; their message then ends with
        "broken pipe", which is what this also recognises.
        """
        return self.error_code == EPIPE or self.message.rstrip().endswith("broken pipe")

    def __str__(self) -> str:
        if self.error_code == OTHER:
            return self.message
        return f"{self.message} [{self.error_code}]"


class UnsupportedMethodError(ProxyError):
    """The method needs a newer protocol version than the proxy speaks."""

    def __init__(self, method: str, needed: str, spoken: str) -> None:
        super().__init__(
            f"{method} needs image-proxy protocol {needed} or later; "
            f"this proxy speaks {spoken} (skopeo 1.9.x speaks 0.2.3; layerpipe speaks 0.2.8)"
        )
        self.method = method
        self.needed = needed
        self.spoken = spoken


class ProxyExitError(ProxyError):
    """The proxy process ended badly: non-zero status, signal, or no exit in time."""

    def __init__(self, message: str, returncode: Optional[int], stderr: str) -> None:
        detail = message
        if stderr.strip():
            detail += "; its stderr:\n" + stderr.rstrip()
        super().__init__(detail)
        self.returncode = returncode
        self.stderr = stderr


class RpcError(ProxyError):
    """A protocol 1.0 error object: from a response, or from a `transfer/end` notification.

    `code` is the JSON-RPC code (-32602 bad params, -32001 image not found, -32004
    verification failed, -32800 cancelled, ...), `kind` the stable layerpipe code when the
    server sends one (e.g. "LP_ERR_DIGEST_MISMATCH"); `error_code` keeps the 0.2.x reading.
    """

    def __init__(self, message: str, code: int, error_code: Optional[str] = OTHER, kind: Optional[str] = None) -> None:
        super().__init__(message, error_code)
        self.code = code
        self.kind = kind

    @classmethod
    def from_object(cls, prefix: str, obj: object) -> "RpcError":
        """Reads a JSON-RPC error object, tolerating a malformed one."""
        if not isinstance(obj, dict):
            return cls(f"{prefix}: malformed error {obj!r}", -32603)
        code = obj.get("code")
        message = obj.get("message")
        data = obj.get("data")
        error_code = data.get("error_code") if isinstance(data, dict) else None
        kind = data.get("kind") if isinstance(data, dict) else None
        return cls(
            f"{prefix}: {message if isinstance(message, str) else obj!r}",
            code if isinstance(code, int) and not isinstance(code, bool) else -32603,
            error_code if isinstance(error_code, str) else OTHER,
            kind if isinstance(kind, str) else None,
        )

    @property
    def cancelled(self) -> bool:
        return self.code == -32800

    @property
    def broken_pipe(self) -> bool:
        return self.code == -32005 or super().broken_pipe
