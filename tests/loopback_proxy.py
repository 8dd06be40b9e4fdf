"""A TCP proxy on loopback whose link a test controls: throttle it, stall it, reset it, take it down.

Storage that is slow, hung or gone is what a backup meets on its worst day; moto's S3
server answers instantly, so fault tests put this proxy between the portal and moto:

    with LoopbackProxy("127.0.0.1", moto_port) as proxy:
        location.endpoint_url = proxy.url
        proxy.throttle(4 * 1024 * 1024)   # 4 MB/s, both directions together
        proxy.stall()                     # bytes stop flowing; connections stay open (a SIGSTOPped server)
        proxy.resume()
        proxy.reset()                     # every open connection is reset (RST), new ones are accepted
        proxy.down()                      # new connections are reset at once, open ones too
        proxy.up()

It runs in threads of the test process, so subprocesses (workers, `manage.py`) reach it by
its port. Every wait is bounded and `close()` ends every thread.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

CHUNK = 16 * 1024


class _TokenBucket:
    """Bytes per second shared by every connection: the link's bandwidth, not each socket's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate: float | None = None
        self._allowance = 0.0
        self._last = time.monotonic()

    def set_rate(self, rate: float | None) -> None:
        with self._lock:
            self.rate = rate
            self._allowance = 0.0
            self._last = time.monotonic()

    def take(self, wanted: int, closed: threading.Event) -> int:
        """Block until some bytes may pass; returns how many (at most ``wanted``)."""
        while not closed.is_set():
            with self._lock:
                if self.rate is None:
                    return wanted
                now = time.monotonic()
                # A burst of at most a tenth of a second, so a pause is not paid back at once.
                self._allowance = min(self._allowance + (now - self._last) * self.rate, max(self.rate / 10, 1))
                self._last = now
                if self._allowance >= 1:
                    granted = int(min(wanted, self._allowance))
                    self._allowance -= granted
                    return granted
                wait = (1 - self._allowance) / self.rate
            time.sleep(min(max(wait, 0.001), 0.05))
        return 0

    def refund(self, unused: int) -> None:
        with self._lock:
            if self.rate is not None:
                self._allowance += unused


def _hard_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, as from a crashed server or a cut link."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class LoopbackProxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._is_down = False
        self._bucket = _TokenBucket()
        self._lock = threading.Lock()
        self._connections: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self.bytes_up = 0  # client -> upstream, read and being forwarded
        self.bytes_down = 0  # upstream -> client, read and being forwarded
        self.connections_accepted = 0
        self._accepter = threading.Thread(target=self._accept_loop, name="loopback-proxy-accept", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- what a test does -------------------------------------------------------------

    def start(self) -> LoopbackProxy:
        self._accepter.start()
        return self

    def throttle(self, bytes_per_second: float | None) -> None:
        """Limit the link to ``bytes_per_second`` (None: unlimited)."""
        self._bucket.set_rate(bytes_per_second)

    def stall(self) -> None:
        """Stop moving bytes; connections stay open and new ones are accepted (a hung server)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        """Reset every open connection; the proxy goes on accepting new ones."""
        with self._lock:
            connections, self._connections = self._connections, []
        for client, upstream in connections:
            _hard_close(client)
            _hard_close(upstream)

    def down(self) -> None:
        """The server is gone: open connections are reset and new ones are reset on arrival."""
        self._is_down = True
        self.reset()

    def up(self) -> None:
        self._is_down = False

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self.reset()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- inside ---------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections_accepted += 1
            if self._is_down:
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _hard_close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(0.2)
            with self._lock:
                self._connections.append((client, upstream))
            for source, sink, up in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, sink, up), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _send_all(self, sink: socket.socket, data: bytes) -> None:
        # The sockets have a short timeout so that close() is noticed; a peer that reads
        # slowly is backpressure, not an error, so keep sending until the proxy closes.
        view = memoryview(data)
        while view and not self._closed.is_set():
            try:
                sent = sink.send(view)
            except TimeoutError:
                continue
            view = view[sent:]

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.wait(0.2):
                    continue
                granted = self._bucket.take(CHUNK, self._closed)
                if not granted:
                    return
                try:
                    data = source.recv(granted)
                except TimeoutError:
                    continue
                self._bucket.refund(granted - len(data))
                if not data:
                    try:
                        sink.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                # A stall that begins mid-chunk holds this chunk too.
                while not self._flowing.wait(0.2):
                    if self._closed.is_set():
                        return
                # Counted before they are sent, so a peer that has read them never sees a count short of them.
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                self._send_all(sink, data)
        except OSError:
            return
