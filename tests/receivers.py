"""A supplier's webhook endpoint on loopback, for the tests that drive the stack over HTTP."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def standard_secret(secret: str) -> str:
    """A registered secret as a supplier hands it to a Standard Webhooks library, as docs/orders.md
    tells it to (not our code's own conversion): as it is in ``whsec_`` form, else ``whsec_`` and
    the base64 of its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        return secret
    return "whsec_" + base64.b64encode(secret.encode("utf-8")).decode("ascii")


class Receiver:
    """Records each request with its headers and raw body, and answers 204.

    Given the webhook's ``secret``, it does what a supplier does: it verifies every delivery with
    the ``standardwebhooks`` package (signature and timestamp, D30), answers 401 to one that does
    not verify and keeps it in ``refused``; :meth:`close` (and :meth:`assert_verified`) then fail
    the test. ``delay`` makes every answer that many seconds late (a slow receiver).

    Webhooks reach loopback only on the ports a stack allows: pass the in-process ``stack`` to
    allow this receiver's port, or give ``port`` (one a ``marketplace run`` was started to allow,
    ``MARKETPLACE_WEBHOOK_PORTS``)."""

    def __init__(
        self, stack: Any = None, port: int = 0, secret: str | None = None, delay: float = 0.0
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.verifier = Webhook(standard_secret(secret)) if secret is not None else None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = {"headers": dict(self.headers.items()), "body": raw, "at": time.monotonic()}
                status = 204
                if receiver.verifier is not None:
                    try:
                        receiver.verifier.verify(raw, dict(self.headers.items()))
                    except WebhookVerificationError as error:
                        request["error"] = str(error)
                        receiver.refused.append(request)
                        status = 401
                if status == 204:
                    receiver.requests.append(request)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
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

    def events(self, prefix: str = "") -> list[str]:
        """The events received, in order; with ``prefix``, only those it begins (the supplier's and
        its listings' own events reach the same webhook: D39)."""
        return [e for r in self.requests if (e := json.loads(r["body"])["event"]).startswith(prefix)]

    def assert_verified(self) -> None:
        assert not self.refused, f"deliveries that do not verify as Standard Webhooks: {self.refused}"

    def close(self) -> None:
        self.server.shutdown()
        self.assert_verified()
