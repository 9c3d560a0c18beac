"""A supplier's webhook endpoint on loopback, for the tests that drive the stack over HTTP."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class Receiver:
    """Accepts every delivery (204) and records each request with its headers and raw body.

    Webhooks reach loopback only on the ports a stack allows: pass the in-process ``stack`` to
    allow this receiver's port, or give ``port`` (one a ``marketplace run`` was started to allow,
    ``MARKETPLACE_WEBHOOK_PORTS``)."""

    def __init__(self, stack: Any = None, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": dict(self.headers.items()), "body": raw})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/marketplace"
        if stack is not None:
            stack.allow_webhook_port(self.port)

    def events(self) -> list[str]:
        return [json.loads(r["body"])["event"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
