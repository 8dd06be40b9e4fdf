"""The fault-injection proxy itself: bytes pass, a throttle slows them, a stall holds them, a reset cuts them."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.loopback_proxy import LoopbackProxy


@pytest.fixture
def echo_server():
    """A loopback server that sends back whatever it receives."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                pass  # the proxy cut the link: what the reset tests do

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def roundtrip(port: int, payload: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        sender.join(timeout)
        return bytes(received)


def test_bytes_pass_unchanged(echo_server):
    payload = bytes(range(256)) * 4096  # 1 MiB
    with LoopbackProxy("127.0.0.1", echo_server) as proxy:
        assert roundtrip(proxy.port, payload) == payload
        assert proxy.bytes_up == len(payload) and proxy.bytes_down == len(payload)


def test_throttle_bounds_the_rate(echo_server):
    payload = b"x" * 200_000  # 400 kB cross the link (there and back)
    with LoopbackProxy("127.0.0.1", echo_server) as proxy:
        proxy.throttle(400_000)
        started = time.monotonic()
        assert roundtrip(proxy.port, payload) == payload
        # 400 kB at 400 kB/s, less the first tenth of a second's burst for each direction.
        assert time.monotonic() - started >= 0.7


def test_stall_holds_bytes_until_resumed(echo_server):
    with LoopbackProxy("127.0.0.1", echo_server) as proxy:
        proxy.stall()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as sock:
            sock.sendall(b"ping")
            with pytest.raises(TimeoutError):
                sock.recv(4)
            proxy.resume()
            sock.settimeout(5)
            assert sock.recv(4) == b"ping"


def answers(sock: socket.socket, byte: bytes) -> bool:
    """Whether ``byte`` comes back through the link; a reset, broken or closed link is False."""
    try:
        sock.sendall(byte)
        return sock.recv(1) == byte
    except ConnectionError:
        return False


def answers_new_connection(port: int, byte: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return answers(sock, byte)
    except ConnectionError:
        return False


def test_reset_and_down_cut_connections(echo_server):
    with LoopbackProxy("127.0.0.1", echo_server) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            assert answers(sock, b"a")
            proxy.reset()
            assert not answers(sock, b"b")
        proxy.down()
        assert not answers_new_connection(proxy.port, b"c")
        proxy.up()
        assert answers_new_connection(proxy.port, b"d")
