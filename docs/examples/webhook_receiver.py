"""A supplier's webhook endpoint for trying the marketplace on one machine (docs/orders.md).

    python3 docs/examples/webhook_receiver.py PORT SECRET

Listens on http://127.0.0.1:PORT/ and verifies each delivery as Standard Webhooks specifies, with
that specification's own library (``pip install standardwebhooks``; the repository's virtual
environment has it): the signature over the ``webhook-id``, the ``webhook-timestamp`` and the raw
body, and a timestamp at most five minutes old (an older request is a replay). It answers 204 to a
delivery that verifies and 401 to one that does not, and prints one line of JSON per delivery: the
event, the delivery id, whether it verified, and the body.

SECRET is the one registered with the webhook. The library takes it in the form
``whsec_<base64 of the key>``: a secret registered in that form as it is, any other secret as the
base64 of its UTF-8 bytes.
"""

import base64
import http.server
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def standard_form(secret: str) -> str:
    """The registered secret as Standard Webhooks libraries take it (``whsec_<base64 key>``)."""
    if secret.startswith("whsec_"):
        return secret
    return "whsec_" + base64.b64encode(secret.encode("utf-8")).decode("ascii")


def main() -> None:
    port, webhook = int(sys.argv[1]), Webhook(standard_form(sys.argv[2]))
    seen: set[str] = set()  # webhook-id is the same on every retry of a delivery: act on it once

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = webhook.verify(raw, dict(self.headers.items()))
                verified = True
            except WebhookVerificationError:
                body, verified = None, False
            delivery = self.headers.get("webhook-id")
            if not verified or delivery not in seen:
                line = {"event": self.headers.get("X-Marketplace-Event"), "delivery": delivery,
                        "verified": verified, "body": body}  # fmt: skip
                print(json.dumps(line, separators=(",", ":")), flush=True)
            if verified:
                seen.add(delivery)
            self.send_response(204 if verified else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # one line per delivery, above, and nothing else

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
