"""A supplier's webhook endpoint on loopback, for the tests that drive the stack over HTTP."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class Receiver:
    """Accepts every delivery (204) and records each request with its headers and raw body."""

    def __init__(self) -> None:
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

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/marketplace"

    def events(self) -> list[str]:
        return [json.loads(r["body"])["event"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
