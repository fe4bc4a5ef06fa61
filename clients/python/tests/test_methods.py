"""The client's method table (layerpipe/wire.py) against the wire's own (protocol/methods.ts).

The build writes protocol/methods.ts as JSON (`npm run build` -> dist/protocol/methods.json;
test/run-all.sh points LAYERPIPE_METHODS_JSON at it). Any drift fails: a method missing on
either side, another since-version, other argument kinds, or other descriptors beside the
reply. Without the JSON these tests skip, or fail under CI=true.
"""

from __future__ import annotations

import json
import os
import unittest
from typing import Any, Dict

import support  # noqa: F401  (puts the client on sys.path)

from layerpipe import errors, wire

REPO = os.path.dirname(os.path.dirname(os.path.dirname(support.HERE)))
DEFAULT_JSON = os.path.join(REPO, "dist", "protocol", "methods.json")


def load_table() -> Dict[str, Any]:
    """The emitted table: $LAYERPIPE_METHODS_JSON (must exist when set), else dist/."""
    path = os.environ.get("LAYERPIPE_METHODS_JSON", "").strip()
    if not path:
        path = DEFAULT_JSON
        if not os.path.exists(path):
            message = f"{path} is missing: run `npm run build` first, or set LAYERPIPE_METHODS_JSON"
            if os.environ.get("CI") == "true":
                raise AssertionError(message)
            raise unittest.SkipTest(message)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def version_text(version) -> str:
    return ".".join(str(n) for n in version)


class TestMethodTable(unittest.TestCase):
    table: Dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.table = load_table()
        cls.methods = {m["name"]: m for m in cls.table["METHODS"]}

    def test_same_method_names(self) -> None:
        self.assertEqual(sorted(wire.METHODS), sorted(self.methods))

    def test_same_since_versions(self) -> None:
        for name, spec in wire.METHODS.items():
            with self.subTest(method=name):
                self.assertEqual(version_text(spec.since), self.methods[name]["since"])

    def test_same_argument_kinds(self) -> None:
        for name, spec in wire.METHODS.items():
            with self.subTest(method=name):
                self.assertEqual(list(spec.args), self.methods[name]["args"])

    def test_same_data_kinds(self) -> None:
        for name, spec in wire.METHODS.items():
            with self.subTest(method=name):
                self.assertEqual(spec.data, self.methods[name]["data"])
                if spec.data != wire.NO_REPLY:
                    self.assertIn(spec.data, wire.FDS_FOR)

    def test_same_constants(self) -> None:
        self.assertEqual(wire.MAX_REQUEST_SIZE, self.table["MAX_MESSAGE_SIZE"])
        self.assertEqual(wire.MAX_JSON_INTEGER, self.table["MAX_JSON_INTEGER"])
        self.assertEqual(wire.SENTINEL_IMAGE_ID, self.table["SENTINEL_IMAGE_ID"])
        self.assertEqual(list(errors.ERROR_CODES), self.table["ERROR_CODES"])

    def test_accepts_the_servers_version(self) -> None:
        version = wire.check_version(self.table["PROTOCOL_VERSION"])
        for name, spec in wire.METHODS.items():
            with self.subTest(method=name):
                self.assertLessEqual(spec.since, version)


class TestArgumentCheck(unittest.TestCase):
    """The table's argument kinds are what the client checks before sending."""

    def test_refuses_wrong_counts_and_kinds(self) -> None:
        spec = wire.METHODS["GetBlob"]
        wire.check_args("GetBlob", spec, [1, "sha256:x", 0])
        bad_args = ([1, "sha256:x"], ["1", "sha256:x", 0], [1, 2, 3], [True, "d", 0], [1, "d", -1], [1, "d", 2**53], [1, "d", 1.0])
        for bad in bad_args:
            with self.subTest(args=bad), self.assertRaises(ValueError):
                wire.check_args("GetBlob", spec, bad)
        wire.check_args("Initialize", wire.METHODS["Initialize"], [])
        with self.assertRaises(ValueError):
            wire.check_args("Initialize", wire.METHODS["Initialize"], [1])

    def test_unknown_error_codes_read_as_other(self) -> None:
        self.assertEqual(errors.ProxyError("x", "retryable").error_code, "retryable")
        self.assertEqual(errors.ProxyError("x", "EAGAIN").error_code, "other")
        self.assertEqual(errors.ProxyError("x", "").error_code, "other")


if __name__ == "__main__":
    unittest.main()
