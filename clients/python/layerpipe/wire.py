"""Packets of the skopeo image-proxy wire (protocol 0.2.x): JSON over SOCK_SEQPACKET.

METHODS mirrors protocol/methods.ts: which method arrived in which version, the kinds
of its arguments, and what travels beside its reply (no fd, one pipe, or a data pipe
plus an error pipe). Every call goes through it; tests/test_methods.py compares it
with the table the build emits (dist/protocol/methods.json).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

from .errors import ProxyError

# Requests larger than this are refused by the proxy (MAX_MESSAGE_SIZE in methods.ts).
MAX_REQUEST_SIZE = 32 * 1024
# Integer arguments above this are refused by the proxy (JavaScript's safe range).
MAX_JSON_INTEGER = 2**53 - 1
# OpenImageOptional's image id when the image does not exist.
SENTINEL_IMAGE_ID = 0
# Replies are normally below 32 KiB, but GetLayerInfo's inline list can exceed it.
REPLY_BUFFER_SIZE = 1024 * 1024
# Room for more fds than any reply carries, so that a surplus is detected, not truncated.
MAX_FDS = 4

MIN_VERSION = (0, 2, 3)
MAX_VERSION_EXCLUSIVE = (0, 3, 0)

# What travels beside a reply.
NO_FD = "none"
PIPE = "pipe"
DATA_AND_ERROR_PIPES = "dataAndErrorPipes"
NO_REPLY = "noReply"

# Descriptors a successful reply carries, by data kind (Shutdown gets no reply).
FDS_FOR = {NO_FD: 0, PIPE: 1, DATA_AND_ERROR_PIPES: 2}

# Argument kinds: a JSON string, or a non-negative integer up to MAX_JSON_INTEGER.
STRING = "string"
UINT = "uint"


class MethodSpec(NamedTuple):
    since: Tuple[int, int, int]
    data: str
    args: Tuple[str, ...]


METHODS: Dict[str, MethodSpec] = {
    "Initialize": MethodSpec((0, 2, 1), NO_FD, ()),
    "OpenImage": MethodSpec((0, 2, 1), NO_FD, (STRING,)),
    "OpenImageOptional": MethodSpec((0, 2, 4), NO_FD, (STRING,)),
    "CloseImage": MethodSpec((0, 2, 1), NO_FD, (UINT,)),
    "GetManifest": MethodSpec((0, 2, 1), PIPE, (UINT,)),
    "GetFullConfig": MethodSpec((0, 2, 3), PIPE, (UINT,)),
    "GetConfig": MethodSpec((0, 2, 1), PIPE, (UINT,)),
    "GetBlob": MethodSpec((0, 2, 1), PIPE, (UINT, STRING, UINT)),
    "GetRawBlob": MethodSpec((0, 2, 8), DATA_AND_ERROR_PIPES, (UINT, STRING)),
    "GetLayerInfo": MethodSpec((0, 2, 5), NO_FD, (UINT,)),
    "GetLayerInfoPiped": MethodSpec((0, 2, 7), PIPE, (UINT,)),
    "FinishPipe": MethodSpec((0, 2, 1), NO_FD, (UINT,)),
    "Shutdown": MethodSpec((0, 2, 1), NO_REPLY, ()),
}


def _is_kind(kind: str, value: Any) -> bool:
    if kind == STRING:
        return isinstance(value, str)
    # bool is an int subclass, but the wire wants a number.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_JSON_INTEGER


def check_args(method: str, spec: MethodSpec, args: Sequence[Any]) -> None:
    """Refuses, before anything is sent, arguments the proxy would refuse."""
    if len(args) != len(spec.args) or not all(_is_kind(k, v) for k, v in zip(spec.args, args)):
        raise ValueError(f"{method} takes ({', '.join(spec.args)}), not {list(args)!r}")


def parse_version(text: str) -> Tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ProxyError(f"proxy answered Initialize with a malformed version {text!r}")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def format_version(version: Tuple[int, int, int]) -> str:
    return ".".join(str(n) for n in version)


def check_version(text: str) -> Tuple[int, int, int]:
    """Accepts ^0.2.3 as the reference clients do; 0.3.0 and later are refused."""
    version = parse_version(text)
    if not (MIN_VERSION <= version < MAX_VERSION_EXCLUSIVE):
        raise ProxyError(
            f"unsupported image-proxy protocol {text}: this client speaks "
            f">= {format_version(MIN_VERSION)}, < {format_version(MAX_VERSION_EXCLUSIVE)}"
        )
    return version


class Reply(NamedTuple):
    success: bool
    value: Any
    pipeid: int
    error_code: str
    error: str


def send_request(sock: socket.socket, method: str, args: List[Any]) -> None:
    packet = json.dumps({"method": method, "args": args}, separators=(",", ":")).encode()
    if len(packet) > MAX_REQUEST_SIZE:
        raise ProxyError(f"{method} request is {len(packet)} bytes; the wire allows {MAX_REQUEST_SIZE}")
    sent = sock.send(packet)
    if sent != len(packet):
        raise ProxyError(f"short send of a {method} request ({sent} of {len(packet)} bytes)")


def receive_reply(sock: socket.socket) -> Tuple[Reply, List[int]]:
    """Reads one reply packet and the fds riding on it (close-on-exec in this process).

    Raises EOFError when the proxy has closed its end.
    """
    flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
    data, fds, msg_flags, _ = socket.recv_fds(sock, REPLY_BUFFER_SIZE, MAX_FDS, flags)
    try:
        if not data and not fds:
            raise EOFError("proxy closed the socket")
        if msg_flags & socket.MSG_TRUNC:
            raise ProxyError(f"reply larger than {REPLY_BUFFER_SIZE} bytes")
        if msg_flags & socket.MSG_CTRUNC:
            raise ProxyError("reply carried more file descriptors than the wire allows")
        return _parse_reply(data), fds
    except BaseException:
        close_fds(fds)
        raise


def _parse_reply(data: bytes) -> Reply:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise ProxyError(f"reply is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProxyError("reply is not a JSON object")
    missing = [k for k in ("success", "value", "pipeid", "error") if k not in obj]
    if missing:
        raise ProxyError(f"reply lacks {', '.join(missing)}")
    success, pipeid, error = obj["success"], obj["pipeid"], obj["error"]
    if not isinstance(success, bool) or not isinstance(pipeid, int) or not isinstance(error, str):
        raise ProxyError("reply has a success, pipeid or error of the wrong type")
    # Protocols before 0.2.8 have no error_code.
    code = obj.get("error_code") or ""
    if not isinstance(code, str):
        raise ProxyError("reply has a non-string error_code")
    return Reply(success, obj["value"], pipeid, code, error)


def close_fds(fds: List[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
