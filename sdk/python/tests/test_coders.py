"""The push worker's JSON coders agree with json.dumps and json.loads."""
import enum
import json
import json.scanner
import threading
import time
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
        from tasker_worker.inprocess import _thread_encoder
        # One thread encoder for the whole corpus, twice over: what a
        # failed encoding left behind must not change the next one.
        thread = _thread_encoder()
        for allow_nan in (True, False):
            enc = compact_encoder(allow_nan)
            for i, v in enumerate(self.corpus() * 2):
                want = outcome(lambda v: json.dumps(v, separators=(",", ":"), default=_json_default,
                                                    allow_nan=allow_nan), v)
                self.assertEqual(outcome(enc, v), want, f"corpus[{i}], allow_nan={allow_nan}")
                if not allow_nan:  # the push worker's
                    self.assertEqual(outcome(thread, v), want, f"corpus[{i}], the thread encoder")

    def test_as_json_dumps(self):
        from tasker_worker.inprocess import _encode, _thread_encoder
        if json.encoder.c_make_encoder is not None:  # else it is _encode, and slower
            self.assertIsNot(_thread_encoder(), _encode, "the thread encoder fell back to JSONEncoder.encode")
        self.check()

    def test_without_the_c_encoder(self):
        from tasker_worker.inprocess import _encode, _thread_encoder
        with mock.patch("json.encoder.c_make_encoder", None):
            self.assertIs(_thread_encoder(), _encode)
            self.check()

    def test_a_c_encoder_of_other_arguments_falls_back(self):
        from tasker_worker.inprocess import _encode, _thread_encoder

        def other(*args):
            raise TypeError("make_encoder() takes other arguments")
        with mock.patch("json.encoder.c_make_encoder", other):
            self.assertIs(_thread_encoder(), _encode)

    def test_each_thread_has_its_own_coders(self):
        from tasker_worker.inprocess import _thread_coders
        mine, made = _thread_coders()
        self.assertEqual(_thread_coders(), (mine, False))
        theirs = []
        t = threading.Thread(target=lambda: theirs.append(_thread_coders()))
        t.start()
        t.join()
        (dec, enc), made = theirs[0]
        self.assertTrue(made)
        self.assertIsNot(dec, mine[0])
        self.assertIsNot(enc, mine[1])

    def test_threads_encode_one_object_at_once(self):
        # A dict subclass's items() is Python code, which lets another
        # thread in mid-encoding: with markers shared between threads, one
        # removes a marker the other then misses (KeyError), or takes the
        # object the other is inside of for a cycle.
        from tasker_worker.inprocess import _thread_coders

        class Yielding(dict):
            def items(self):
                time.sleep(0)
                return super().items()
        shared = Yielding(a=Yielding(b=[1, 2]), c=uuid.UUID(int=3))
        errors = []

        def run():
            enc = _thread_coders()[0][1]
            for _ in range(300):
                try:
                    self.assertEqual(enc(shared), '{"a":{"b":[1,2]},"c":"00000000-0000-0000-0000-000000000003"}')
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_a_failed_encoding_leaves_no_marker(self):
        # The C encoder keeps the containers it is inside of until it
        # leaves them, and an error leaves them there: the same dict
        # encoded again would be taken for a cycle.
        from tasker_worker.inprocess import _thread_encoder
        enc = _thread_encoder()
        d = {"a": [float("nan")]}
        with self.assertRaises(ValueError):
            enc(d)
        d["a"] = [1]
        self.assertEqual(enc(d), '{"a":[1]}')
        self.assertEqual(enc({"b": d}), '{"b":{"a":[1]}}')


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
        from tasker_worker.inprocess import PushWorker, _thread_encoder
        w = PushWorker.__new__(PushWorker)  # no engine: _run only
        w.registry, w._stopping = HandlerRegistry(), False
        with self.assertLogs("tasker_worker", level="WARNING") as logs:
            out, ran = w._run((compact_decoder(), _thread_encoder()),
                              b'[1,{"event_id":"e","handler_name":"nobody.Here"}]')
        self.assertTrue(any("not an object" in r.getMessage() for r in logs.records), logs.output)
        first, second = json.loads(out)
        self.assertEqual(first["outcome"], "failure")
        self.assertTrue(first["error"]["retryable"], first)
        self.assertEqual(second["event_id"], "e")
        self.assertEqual(second["error"]["error_type"], "handler_not_found")
        self.assertEqual(ran, 1)
        w._stopping = True
        with self.assertLogs("tasker_worker", level="ERROR"):
            out, ran = w._run((compact_decoder(), _thread_encoder()), b'[{"no_event_id":1},{"event_id":"e"}]')
        first, second = json.loads(out)
        self.assertTrue(first["error"]["retryable"], first)
        self.assertEqual(second["outcome"], "handed_back")
        self.assertEqual(ran, 0)
