"""An SQS endpoint on loopback that answers the message-move calls itself.

moto answers StartMessageMoveTask, ListMessageMoveTasks and
CancelMessageMoveTask with a 500, so the native path of a dead-letter move
cannot run against it. This server forwards every other call to the moto
server unchanged and answers those three as SQS documents them, recording
each request body so tests can assert what was sent.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MOVE_CALLS = ("StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask")


class MoveEndpoint:
    """``endpoint_url`` serves SQS; ``calls`` lists (action, body) of the three move calls."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("://", 1)[1].rstrip("/").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: What ListMessageMoveTasks answers for the started task.
        self.status = "RUNNING"
        self.moved = 0
        self.to_move = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MoveEndpoint:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((action, body))
        if action == "StartMessageMoveTask":
            return {"TaskHandle": "handle-1"}
        if action == "CancelMessageMoveTask":
            self.status = "CANCELLED"
            return {"ApproximateNumberOfMessagesMoved": self.moved}
        return {
            "Results": [
                {
                    "TaskHandle": "handle-1",
                    "Status": self.status,
                    "SourceArn": body.get("SourceArn"),
                    "ApproximateNumberOfMessagesMoved": self.moved,
                    "ApproximateNumberOfMessagesToMove": self.to_move,
                }
            ]
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                action = target.rsplit(".", 1)[-1]
                if action in MOVE_CALLS:
                    body = json.dumps(endpoint.answer(action, json.loads(data or b"{}"))).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                upstream = http.client.HTTPConnection(*endpoint.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=data, headers=headers)
                reply = upstream.getresponse()
                payload = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

        return Handler
