"""The push worker's JSON coders agree with json.dumps and json.loads."""
import enum
import json
import json.scanner
import unittest
import uuid
from unittest import mock

from tasker_worker.transport import _json_default, compact_decoder, compact_encoder


class Colour(enum.IntEnum):
    RED = 1


class Dict(dict):
    pass


class Float(float):
    pass


def outcome(f, v):
    """f(v), or the type of the error it raised."""
    try:
        return f(v)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


class EncoderTest(unittest.TestCase):
    def corpus(self):
        loop = {}
        loop["self"] = loop
        deep = []
        for _ in range(100000):
            deep = [deep]
        return [
            {}, [], "", 0, -1.5, True, None, "\u00e9\n\ud800", {"b": 1, "a": [1, 2.5, None]},
            {1: "int key", 2.5: "float key", None: "none key", True: "bool key"},
            Dict(a=Float(1.5)), Colour.RED, {Colour.RED: Colour.RED}, {1, 2}, uuid.UUID(int=7),
            float("nan"), float("inf"), {"x": [float("-inf")]}, loop, [loop], b"bytes", {("a",): 1}, object(),
            deep,
        ]

    def check(self):
        for allow_nan in (True, False):
            enc = compact_encoder(allow_nan)
            for i, v in enumerate(self.corpus()):
                want = outcome(lambda v: json.dumps(v, separators=(",", ":"), default=_json_default,
                                                    allow_nan=allow_nan), v)
                self.assertEqual(outcome(enc, v), want, f"corpus[{i}], allow_nan={allow_nan}")

    def test_as_json_dumps(self):
        self.check()

    def test_without_the_c_encoder(self):
        with mock.patch("json.encoder.c_make_encoder", None):
            self.check()


class DecoderTest(unittest.TestCase):
    corpus = ['[1]', ' [1]', '[1] ', '', '[1,', '\ufeff[1]', '[1]x', '[1] [2]', '{"a":NaN}', '"\\ud800"',
              '[' * 100000 + ']' * 100000, '1e400', '{"a":1,"a":2}', '[{"event_id":"x","n":-0.0}]', 'nope', 'NaN']

    def check(self):
        dec = compact_decoder()
        for s in self.corpus:
            got, want = outcome(dec, s), outcome(json.loads, s)
            if isinstance(want, float) and want != want:
                self.assertNotEqual(got, got)
            else:
                self.assertEqual(got, want, f"{s!r:.40}")

    def test_as_json_loads(self):
        self.check()

    def test_with_the_python_scanner(self):
        with mock.patch("json.scanner.make_scanner", json.scanner.py_make_scanner):
            self.check()


if __name__ == "__main__":
    unittest.main()


class PushRunTest(unittest.TestCase):
    """PushWorker._run without an engine: each event gets its completion."""

    def test_an_unreadable_event_fails_alone(self):
        from tasker_core.handler import HandlerRegistry
        from tasker_worker.inprocess import PushWorker
        w = PushWorker.__new__(PushWorker)  # no engine: _run only
        w.registry, w._stopping = HandlerRegistry(), False
        with self.assertLogs("tasker_worker", level="WARNING") as logs:
            out, ran = w._run(compact_decoder(), b'[1,{"event_id":"e","handler_name":"nobody.Here"}]')
        self.assertTrue(any("not an object" in r.getMessage() for r in logs.records), logs.output)
        first, second = json.loads(out)
        self.assertEqual(first["outcome"], "failure")
        self.assertTrue(first["error"]["retryable"], first)
        self.assertEqual(second["event_id"], "e")
        self.assertEqual(second["error"]["error_type"], "handler_not_found")
        self.assertEqual(ran, 1)
        w._stopping = True
        with self.assertLogs("tasker_worker", level="ERROR"):
            out, ran = w._run(compact_decoder(), b'[{"no_event_id":1},{"event_id":"e"}]')
        first, second = json.loads(out)
        self.assertTrue(first["error"]["retryable"], first)
        self.assertEqual(second["outcome"], "handed_back")
        self.assertEqual(ran, 0)
