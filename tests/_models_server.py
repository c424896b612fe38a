"""A local HTTP file server on 127.0.0.1 for download tests: Range support and scripted failures; and a
server that accepts connections but never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    files: dict[str, bytes] = field(default_factory=dict)
    # Close the connection after this many body bytes on the first N full-file requests.
    drop_after: int | None = None
    drops_left: int = 0
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour: Behaviour

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_GET(self):
        b = self.behaviour
        rng = self.headers.get("Range")
        b.requests.append((self.path, rng))
        name = self.path.rsplit("/", 1)[-1]
        data = b.files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and b.honour_range and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if b.drop_after is not None and b.drops_left > 0 and start == 0:
            b.drops_left -= 1
            self.wfile.write(body[: b.drop_after])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    """Serve `behaviour.files` at http://127.0.0.1:PORT/models/<name>; yields the base URL."""
    handler = type("Handler", (_Handler,), {"behaviour": behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/models"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """A listening socket that accepts connections (kernel backlog) but never answers: a stalled network."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/models"
        self._held: list[socket.socket] = []

    def wait_for_request(self, timeout: float, still_waiting: Callable[[], bool] = lambda: True,
                         describe: Callable[[], str] = lambda: "") -> str:
        """Block until a client has sent a whole request (its headers) and now waits for the answer; the
        request line. Gives up (AssertionError, with `describe()`) after `timeout` s, or as soon as
        `still_waiting()` is false (the client died first). The connection is held open, unanswered, until
        the server closes."""
        self.socket.settimeout(0.2)
        end = time.monotonic() + timeout
        while True:
            assert still_waiting(), f"the client ended before it asked the server for anything; {describe()}"
            assert time.monotonic() < end, f"no request within {timeout} s; {describe()}"
            try:
                conn, _ = self.socket.accept()
                break
            except TimeoutError:
                continue
        self._held.append(conn)
        conn.settimeout(max(1.0, end - time.monotonic()))
        data = b""
        while b"\r\n\r\n" not in data:
            block = conn.recv(4096)
            assert block, f"the client hung up mid-request: {data!r}"
            data += block
        return data.split(b"\r\n", 1)[0].decode("latin-1")

    def close(self) -> None:
        for conn in self._held:
            conn.close()
        self.socket.close()


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    """A SilentServer for the `with` block; its `url` is the base URL."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
