"""A TCP proxy on loopback that can add latency, be cut, black-holed, refuse, and be restored.

Tests and benchmarks put it between boto3/kombu and the moto server to make
the endpoint slow, unreachable, or back again, over real sockets:

* :meth:`Proxy.cut` drops every open connection and closes new ones at once;
* :meth:`Proxy.black_hole` forwards nothing and closes nothing: connections are
  accepted and the bytes sent either way are dropped, so a request made during
  the hole never gets an answer (its client must time out);
* :meth:`Proxy.refuse` stops listening: connecting is refused, as to a stopped server.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

#: The JSON protocol (SQS's, CloudWatch's) names the action in a header; the query
#: protocol (STS's) at the start of the body, which may come in a chunk of its own;
#: the RPC v2 CBOR protocol (CloudWatch's, in newer botocore) in the request path.
_ACTION = re.compile(
    rb"X-Amz-Target:\s*(?:AmazonSQS|GraniteServiceVersion20100801)\.(\w+)"
    rb"|(?:^|[?&]|\r\n\r\n)Action=(\w+)|^POST /service/\w+/operation/(\w+)",
    re.IGNORECASE | re.MULTILINE,
)

_DENIED_BODY = (
    b'{"__type":"com.amazon.coral.service#AccessDeniedException",'
    b'"message":"User is not authorized to perform this action (test proxy)"}'
)
#: SQS's answer to a call an IAM policy denies (JSON protocol; query error header).
ACCESS_DENIED = (
    b"HTTP/1.1 403 Forbidden\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\n"
    b"x-amzn-query-error: AccessDenied;Sender\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_DENIED_BODY)).encode() + b"\r\n\r\n" + _DENIED_BODY
)
_DENIED_XML = (
    b'<ErrorResponse xmlns="https://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender'
    b"</Type><Code>AuthorizationError</Code><Message>User is not authorized to perform this "
    b"action (test proxy)</Message></Error><RequestId>0</RequestId></ErrorResponse>"
)
#: SNS's answer to a call an IAM policy denies (query protocol, XML).
ACCESS_DENIED_QUERY = (
    b"HTTP/1.1 403 Forbidden\r\n"
    b"Content-Type: text/xml\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_DENIED_XML)).encode() + b"\r\n\r\n" + _DENIED_XML
)


def _denied_answer(request: bytes) -> bytes:
    """The 403 in the request's protocol: XML for the query protocol (SNS, STS), else JSON."""
    query = b"x-www-form-urlencoded" in request.lower() or re.search(
        rb"(?:^|&|\r\n\r\n)Action=\w", request
    )
    return ACCESS_DENIED_QUERY if query else ACCESS_DENIED


@dataclass
class Proxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``delay`` seconds are added per request chunk."""

    target: tuple[str, int]
    delay: float = 0.0
    port: int = 0
    connections: int = 0
    #: SQS and STS requests seen, by action ("SendMessage": 3, "AssumeRole": 1, ...).
    requests: Counter[str] = field(default_factory=Counter)
    _server: socket.socket | None = field(default=None, repr=False)
    _cut: threading.Event = field(default_factory=threading.Event, repr=False)
    _open_hole: threading.Event = field(default_factory=threading.Event, repr=False)
    _deny: threading.Event = field(default_factory=threading.Event, repr=False)
    #: Requests holding these bytes (a queue's name, say) are answered 403 AccessDenied.
    deny_matching: bytes | None = None
    _open: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def to(cls, endpoint_url: str, delay: float = 0.0) -> Proxy:
        host, port = endpoint_url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
        return cls((host, int(port)), delay=delay)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections' traffic and drop the open ones."""
        self._cut.set()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def black_hole(self) -> None:
        """Forward nothing and close nothing until :meth:`restore`: the bytes are dropped."""
        self._open_hole.set()

    def refuse(self) -> None:
        """Stop listening on the port: connecting is refused until :meth:`restore`."""
        self.cut()
        self._close_listener()

    def restore(self) -> None:
        self._cut.clear()
        self._deny.clear()
        self._open_hole.clear()
        if self._server is None and self.port:
            self.start()

    def deny(self) -> None:
        """Answer every new request with SQS's 403 AccessDenied, as a denying IAM policy does."""
        self._deny.set()
        self.cut()
        self._cut.clear()

    def stop(self) -> None:
        self.cut()
        self._close_listener()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            server.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while self._server is not None:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            if self._deny.is_set():
                threading.Thread(target=self._refuse, args=(client,), daemon=True).start()
                continue
            if self._open_hole.is_set():
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            self._connect(client)

    def _swallow(self, client: socket.socket) -> None:
        """A connection made during a black hole: read and drop until the client gives up."""
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass
        with contextlib.suppress(OSError):
            client.close()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self.connections += 1
            self._open.update((client, upstream))
        threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _refuse(self, client: socket.socket) -> None:
        """Read one request and answer it 403 AccessDenied (JSON and query protocols)."""
        try:
            client.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            while length and len(body) < int(length.group(1)):
                chunk = client.recv(65536)
                if not chunk:
                    break
                body += chunk
            self._count(head + body)
            client.sendall(ACCESS_DENIED)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _count(self, data: bytes) -> None:
        for match in _ACTION.finditer(data):
            action = (match.group(1) or match.group(2) or match.group(3)).decode()
            with self._lock:
                self.requests[action] += 1

    def reset_counts(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        with self._lock:
            counts, self.requests = self.requests, Counter()
        return counts

    def _pipe(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        try:
            while not self._cut.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if self._open_hole.is_set():
                    continue  # dropped
                if outbound:
                    self._count(data)
                    if self.deny_matching and self.deny_matching in data:
                        source.sendall(_denied_answer(data))
                        break
                    if self.delay:
                        time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
