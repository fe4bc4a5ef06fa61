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
