"""A supplier's webhook endpoint for trying the marketplace on one machine (docs/orders.md).

    python3 docs/examples/webhook_receiver.py PORT SECRET

Listens on http://127.0.0.1:PORT/ and answers every POST with 204. For each delivery it prints one
line of JSON: the event and delivery id from the headers, whether the signature is the HMAC-SHA256
of the raw body with SECRET, and the body. Standard library only, so it runs with any python3.
"""

import hashlib
import hmac
import http.server
import json
import sys


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            verified = hmac.compare_digest(expected, self.headers.get("X-Marketplace-Signature", ""))
            line = {
                "event": self.headers.get("X-Marketplace-Event"),
                "delivery": self.headers.get("X-Marketplace-Delivery"),
                "verified": verified,
                "body": json.loads(raw) if verified else None,
            }
            print(json.dumps(line, separators=(",", ":")), flush=True)
            self.send_response(204 if verified else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # one line per delivery, above, and nothing else

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
