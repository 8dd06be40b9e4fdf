"""One loopback HTTP server for tests: scripted answers, stalls, and a record of every request.

A real server on 127.0.0.1 (an ephemeral port), so the code under test goes through its real HTTP
client, timeouts and error handling; only the far end is a stand-in.

    with HttpStub() as stub:                     # or the `http_stub` fixture (started for you)
        stub.script(500, 500)                    # the next two requests get 500 ...
        stub.default = 200                       # ... every later one 200 (the default default)
        stub.stall = 3.0                         # wait 3 s before answering each request
        post(stub.url("/services/T000/B000/x"))
        assert [r.method for r in stub.requests] == ["POST"]
        assert stub.requests[0].json() == {...}

An answer is an `int` (a status, body "ok"), an `Answer` (status, body, headers, delay), or a
callable taking the `Request` and returning either. An `Answer` body may be `bytes`, `str`, a
JSON-serialisable `dict`/`list`, or an iterable of `bytes` chunks, streamed one by one (give a
Content-Length header yourself if the client needs one); if the client hangs up mid-stream,
`client_hung_up` is set. Stalls and streams end early when the stub stops (`stopping` is set).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """What the stub was sent: one per request, in arrival order."""

    method: str
    path: str  # with the query string, as sent
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode()


@dataclass
class Answer:
    """What the stub answers: a status, a body, extra headers, and a delay (seconds) before answering."""

    status: int = 200
    body: bytes | str | dict | list | Iterable[bytes] = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


AnswerSpec = int | Answer | Callable[[Request], int | Answer]


class HttpStub:
    """A threaded HTTP server on loopback answering from a script, then with `default`."""

    def __init__(self, *script: AnswerSpec, default: AnswerSpec = 200, stall: float = 0.0) -> None:
        self.default: AnswerSpec = default
        self.stall = stall  # seconds to wait before every answer (on top of an Answer's own delay)
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self.client_hung_up = threading.Event()
        self._script: deque[AnswerSpec] = deque(script)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting -----------------------------------------------------------------------

    def script(self, *answers: AnswerSpec) -> None:
        """Queue answers for the next requests, one each, in order; `default` answers after them."""
        with self._lock:
            self._script.extend(answers)

    @property
    def pending(self) -> int:
        """How many scripted answers have not been used yet."""
        with self._lock:
            return len(self._script)

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            spec = self._script.popleft() if self._script else self.default
        if callable(spec) and not isinstance(spec, Answer):
            spec = spec(request)
        return spec if isinstance(spec, Answer) else Answer(status=int(spec))

    # --- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # --- life ----------------------------------------------------------------------------

    def start(self) -> HttpStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers.items()), body)
                answer = stub._next(request)
                if stub.stopping.wait(stub.stall + answer.delay):
                    self.close_connection = True
                    return
                stub._send(self, answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args) -> None:
                pass

        self.stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # a stalled or streaming answer never blocks stop()
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-stub", daemon=True)
        self._thread.start()
        return self

    def _send(self, handler: BaseHTTPRequestHandler, answer: Answer) -> None:
        body = answer.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **answer.headers}
        else:
            headers = dict(answer.headers)
        if isinstance(body, str):
            body = body.encode()
        try:
            handler.send_response(answer.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if isinstance(body, bytes):
                if not any(name.lower() == "content-length" for name in headers):
                    handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                if handler.command != "HEAD":
                    handler.wfile.write(body)
                return
            # A stream: chunks as they come, until the iterable ends, the stub stops or the client leaves.
            handler.close_connection = True
            handler.end_headers()
            for chunk in body:
                if self.stopping.is_set():
                    break
                handler.wfile.write(chunk)
                handler.wfile.flush()
        except OSError:
            self.client_hung_up.set()
            handler.close_connection = True

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpStub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
