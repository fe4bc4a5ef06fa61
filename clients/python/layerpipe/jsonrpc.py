"""Protocol 1.0 (JSON-RPC 2.0) as this client knows it: methods and their params, the
notifications, the error codes and the limits.

PARAMS mirrors PARAMS_1 in protocol/jsonrpc.ts; tests/test_jsonrpc_table.py compares it
with the `PROTOCOL_1` section the build writes to dist/protocol/methods.json. Every request
goes through check_params, so a request the server would refuse is refused here first.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

# What Initialize asks for; any 1.x answer is accepted.
PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = 1

MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_STREAM_WINDOW = 1024 * 1024
MIN_STREAM_WINDOW = 64 * 1024
MAX_STREAM_WINDOW = 64 * 1024 * 1024
MAX_STREAM_CHUNK = 256 * 1024
MAX_JSON_INTEGER = 2**53 - 1

PAYLOAD_FD = "fd"
PAYLOAD_FIFO = "fifo"
PAYLOAD_STREAM = "stream"
PAYLOAD_KINDS = (PAYLOAD_FD, PAYLOAD_FIFO, PAYLOAD_STREAM)

# Parameter kinds as protocol/jsonrpc.ts names them; a trailing "?" marks an optional one.
PARAMS: Dict[str, Dict[str, str]] = {
    "Initialize": {"protocolVersion": "string", "payloads": "payloads?", "window": "uint?"},
    "OpenImage": {"reference": "string"},
    "OpenImageOptional": {"reference": "string"},
    "CloseImage": {"image": "uint"},
    "GetManifest": {"image": "uint", "raw": "boolean?", "platform": "platform?"},
    "ListInstances": {"image": "uint"},
    "ListTags": {"reference": "string"},
    "GetFullConfig": {"image": "uint"},
    "GetConfig": {"image": "uint"},
    "GetLayerInfo": {"image": "uint"},
    "GetSignatures": {"image": "uint"},
    "GetBlob": {"image": "uint", "digest": "string", "size": "int?", "progress": "boolean?"},
    "GetRawBlob": {"image": "uint", "digest": "string", "offset": "uint?", "length": "uint?"},
    "FinishTransfer": {"transfer": "uint"},
    "CancelTransfer": {"transfer": "uint"},
    "Shutdown": {},
}

# Methods whose result is {transfer, size, path?}: bytes that travel by the session's payload.
TRANSFER_METHODS = ("GetBlob", "GetRawBlob")

TRANSFER_DATA = "transfer/data"
TRANSFER_END = "transfer/end"
TRANSFER_CREDIT = "transfer/credit"
TRANSFER_PROGRESS = "transfer/progress"
CANCEL_REQUEST = "$/cancelRequest"
# Server -> client notifications this client acts on.
SERVER_NOTIFICATIONS = (TRANSFER_DATA, TRANSFER_END, TRANSFER_PROGRESS)

# RpcErrorCodes in protocol/jsonrpc.ts.
ERROR_CODES: Dict[str, int] = {
    "ParseError": -32700,
    "InvalidRequest": -32600,
    "MethodNotFound": -32601,
    "InvalidParams": -32602,
    "InternalError": -32603,
    "ServerError": -32000,
    "ImageNotFound": -32001,
    "AuthenticationFailed": -32002,
    "Retryable": -32003,
    "VerificationFailed": -32004,
    "BrokenPipe": -32005,
    "PolicyDenied": -32006,
    "NotInitialized": -32007,
    "Cancelled": -32800,
}
ERROR_NAMES: Dict[int, str] = {code: name for name, code in ERROR_CODES.items()}


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_JSON_INTEGER


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_JSON_INTEGER


def _is_platform(value: Any) -> bool:
    if not isinstance(value, Mapping) or not {"os", "architecture"} <= set(value):
        return False
    if not set(value) <= {"os", "architecture", "variant"}:
        return False
    return all(isinstance(v, str) for v in value.values())


def _is_payloads(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(v in PAYLOAD_KINDS for v in value)


KIND_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "uint": _is_uint,
    "int": _is_int,
    "boolean": lambda v: isinstance(v, bool),
    "platform": _is_platform,
    "payloads": _is_payloads,
}


def split_kind(spec: str) -> Tuple[str, bool]:
    """("uint", True) for "uint?"."""
    return (spec[:-1], True) if spec.endswith("?") else (spec, False)


def check_params(method: str, params: Mapping[str, Any]) -> None:
    """Raises ValueError, before anything is sent, for params the server would refuse (-32602)."""
    spec = PARAMS.get(method)
    if spec is None:
        raise ValueError(f"{method} is not a protocol 1.0 method")
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ValueError(f"{method} takes no {', '.join(unknown)}")
    for name, kind_spec in spec.items():
        kind, optional = split_kind(kind_spec)
        if name not in params:
            if not optional:
                raise ValueError(f"{method} needs {name} ({kind})")
            continue
        if not KIND_CHECKS[kind](params[name]):
            raise ValueError(f"{method}: {name} must be {kind}, not {params[name]!r}")


def check_version(text: Any) -> str:
    """Accepts any 1.x answer to Initialize."""
    if not isinstance(text, str):
        raise ValueError(f"Initialize answered protocolVersion {text!r}, not a string")
    major = text.split(".", 1)[0]
    if not major.isdigit() or int(major) != PROTOCOL_MAJOR:
        raise ValueError(f"unsupported protocol {text}: this client speaks 1.x")
    return text
