"""The shared loopback HTTP stub does what the tests that use it rely on."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.http_stub import Answer, HttpStub


def call(url: str, data: dict | None = None, timeout: float = 5) -> tuple[int, bytes]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "X-Token": "t"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_scripted_answers_then_the_default_and_every_request_is_recorded(http_stub):
    http_stub.script(500, 500)
    statuses = [call(http_stub.url("/hook?x=1"), {"n": n})[0] for n in range(3)]
    assert statuses == [500, 500, 200]
    assert http_stub.pending == 0
    assert [(r.method, r.path, r.json()) for r in http_stub.requests] == [
        ("POST", "/hook?x=1", {"n": 0}),
        ("POST", "/hook?x=1", {"n": 1}),
        ("POST", "/hook?x=1", {"n": 2}),
    ]
    assert http_stub.requests[0].headers["X-Token"] == "t"
    assert call(http_stub.url("/"))[0] == 200
    assert http_stub.requests[-1].method == "GET" and http_stub.requests[-1].body == b""


def test_answers_may_carry_a_body_headers_or_be_computed_from_the_request():
    with HttpStub(Answer(201, {"ok": True}), lambda request: Answer(202, request.path), default=404) as stub:
        assert call(stub.url("/a")) == (201, b'{"ok": true}')
        assert call(stub.url("/b")) == (202, b"/b")
        assert call(stub.url("/c"))[0] == 404


def test_a_stall_delays_the_answer_past_a_client_timeout_and_stop_does_not_wait_for_it(http_stub):
    http_stub.stall = 30
    started = time.monotonic()
    with pytest.raises(OSError):  # urllib's timeout
        call(http_stub.url(), timeout=0.5)
    assert time.monotonic() - started < 5
    started = time.monotonic()
    http_stub.stop()
    assert time.monotonic() - started < 5
    assert len(http_stub.requests) == 1


def test_a_streamed_body_stops_when_the_client_hangs_up():
    def trickle():
        while True:
            yield b"x"
            time.sleep(0.01)

    with HttpStub(Answer(200, trickle(), headers={"Content-Length": "1000000"})) as stub:
        with urllib.request.urlopen(stub.url(), timeout=5) as response:
            assert response.read(3) == b"xxx"
        deadline = time.monotonic() + 10
        while not stub.client_hung_up.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stub.client_hung_up.is_set()
