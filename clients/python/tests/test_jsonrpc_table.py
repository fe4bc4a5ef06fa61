"""The client's protocol 1.0 table (layerpipe/jsonrpc.py) against protocol/jsonrpc.ts, as the
build writes it (`PROTOCOL_1` in dist/protocol/methods.json). Any drift fails; without the
JSON (or without its PROTOCOL_1 section) these tests skip, or fail under CI=true."""

from __future__ import annotations

import os
import unittest
from typing import Any, Dict

import support  # noqa: F401  (puts the client on sys.path)
from test_methods import load_table

from layerpipe import jsonrpc


def load_protocol_1() -> Dict[str, Any]:
    table = load_table().get("PROTOCOL_1")
    if table is None:
        message = "methods.json has no PROTOCOL_1 section: rebuild (`npm run build`)"
        if os.environ.get("CI") == "true":
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    return table


class TestProtocol1Table(unittest.TestCase):
    table: Dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.table = load_protocol_1()

    def test_same_methods_and_params(self) -> None:
        self.assertEqual(sorted(jsonrpc.PARAMS), sorted(self.table["PARAMS"]))
        for method, params in jsonrpc.PARAMS.items():
            with self.subTest(method=method):
                self.assertEqual(params, self.table["PARAMS"][method])

    def test_every_kind_is_checked(self) -> None:
        for method, params in self.table["PARAMS"].items():
            for name, spec in params.items():
                with self.subTest(method=method, param=name):
                    self.assertIn(jsonrpc.split_kind(spec)[0], jsonrpc.KIND_CHECKS)

    def test_same_error_codes(self) -> None:
        self.assertEqual(jsonrpc.ERROR_CODES, self.table["ERROR_CODES"])

    def test_same_notifications(self) -> None:
        names = {jsonrpc.TRANSFER_DATA, jsonrpc.TRANSFER_END, jsonrpc.TRANSFER_CREDIT, jsonrpc.TRANSFER_PROGRESS}
        self.assertEqual(names, set(self.table["NOTIFICATIONS"].values()))

    def test_same_constants(self) -> None:
        for name in ("MAX_MESSAGE_SIZE", "DEFAULT_STREAM_WINDOW", "MIN_STREAM_WINDOW", "MAX_STREAM_WINDOW", "MAX_STREAM_CHUNK"):
            with self.subTest(constant=name):
                self.assertEqual(getattr(jsonrpc, name), self.table[name])
        self.assertEqual(list(jsonrpc.PAYLOAD_KINDS), self.table["PAYLOAD_KINDS"])
        self.assertEqual(list(jsonrpc.TRANSFER_METHODS), self.table["TRANSFER_METHODS"])

    def test_accepts_the_servers_version(self) -> None:
        self.assertEqual(jsonrpc.check_version(self.table["PROTOCOL_VERSION"]), self.table["PROTOCOL_VERSION"])


class TestParamCheck(unittest.TestCase):
    """What check_params refuses is never sent (the server would answer -32602)."""

    def test_accepts_what_the_contract_allows(self) -> None:
        jsonrpc.check_params("GetBlob", {"image": 1, "digest": "sha256:x"})
        jsonrpc.check_params("GetBlob", {"image": 1, "digest": "sha256:x", "size": -1, "progress": True})
        jsonrpc.check_params("GetRawBlob", {"image": 1, "digest": "d", "offset": 10, "length": 0})
        jsonrpc.check_params("GetManifest", {"image": 2, "raw": True, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}})
        jsonrpc.check_params("Initialize", {"protocolVersion": "1.0", "payloads": ["fifo", "stream"]})
        jsonrpc.check_params("Shutdown", {})

    def test_refuses_what_the_server_would(self) -> None:
        bad = [
            ("GetBlob", {"image": 1}),
            ("GetBlob", {"image": True, "digest": "d"}),
            ("GetBlob", {"image": 1, "digest": "d", "size": 1.5}),
            ("GetRawBlob", {"image": 1, "digest": "d", "offset": -1}),
            ("GetRawBlob", {"image": 1, "digest": "d", "offset": 2**53}),
            ("GetManifest", {"image": 1, "platform": {"os": "linux"}}),
            ("GetManifest", {"image": 1, "platform": {"os": "linux", "architecture": "amd64", "cpu": "x"}}),
            ("GetManifest", {"image": 1, "raw": 1}),
            ("OpenImage", {"reference": "oci:x", "extra": 1}),
            ("Initialize", {"protocolVersion": "1.0", "payloads": ["pigeon"]}),
            ("NoSuchMethod", {}),
        ]
        for method, params in bad:
            with self.subTest(method=method, params=params), self.assertRaises(ValueError):
                jsonrpc.check_params(method, params)

    def test_versions(self) -> None:
        self.assertEqual(jsonrpc.check_version("1.0.0"), "1.0.0")
        self.assertEqual(jsonrpc.check_version("1.7.2"), "1.7.2")
        for bad in ("0.2.8", "2.0.0", "", None, "x.y"):
            with self.subTest(version=bad), self.assertRaises(ValueError):
                jsonrpc.check_version(bad)


if __name__ == "__main__":
    unittest.main()
