"""The local HTTP API: API Gateway's REST API, built from the OpenAPI body in template.yaml.

For each request it finds the route in the body's ``paths``, applies the route's security (the
Cognito authorizer, emulated by :class:`~marketplace_local.auth.TokenIssuer`), builds the same
``aws_proxy`` event API Gateway builds (REST payload 1.0, claims under
``requestContext.authorizer.claims``), invokes the integration's Lambda in-process and writes its
response. Gateway errors use the body's ``x-amazon-apigateway-gateway-responses`` where it has one
(its status, body template and ``gatewayresponse.header`` parameters), else its
``DEFAULT_4XX``/``DEFAULT_5XX``, as API Gateway does. The stage's throttle (its ``MethodSettings``
in template.yaml) is API Gateway's token bucket: ``ThrottlingRateLimit`` requests a second refill a
bucket of ``ThrottlingBurstLimit``; a request that finds it empty is answered ``THROTTLED`` (429)
before its authorizer or integration runs.

Python's ``http.server`` parses the requests; :class:`_Handler` overrides its hooks
(``parse_request``, ``send_error``) so that a request API Gateway refuses is refused here in the
same way, as a JSON gateway response, never an HTML page or a dropped connection: a method API
Gateway does not route (``TRACE``), a header section over API Gateway's 10,240 bytes, a
``Content-Length`` that is not a number, a bare CR inside a header line (``email``'s parser, which
``http.server`` uses, would split the line in two there; a strict HTTP parser refuses it).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from marketplace_local import static
from marketplace_local.auth import AuthError, TokenIssuer
from marketplace_local.lambdas import LambdaRuntime

log = logging.getLogger("marketplace_local.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
# API Gateway's limit on the request line and the header values together (REST APIs, not adjustable).
MAX_HEADER_BYTES = 10240
# What is read and dropped after a refusal, at most, and for how long.
_MAX_DRAIN_BYTES, _DRAIN_SECONDS = 1024 * 1024, 1.0
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# API Gateway's defaults (status, message) for the gateway responses a template does not override.
_DEFAULT_GATEWAY_RESPONSES = {
    "UNAUTHORIZED": (401, "Unauthorized"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_FAILURE": (502, "Internal server error"),
}


class TokenBucket:
    """API Gateway's throttle for a stage: ``rate`` tokens a second refill a bucket of ``burst``
    (full at the start); each request takes one, and finds none when it is over the limit."""

    def __init__(self, rate: float, burst: float, clock: Any = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = burst, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            moment = self.clock()
            self.tokens = min(self.burst, self.tokens + (moment - self.at) * self.rate)
            self.at = moment
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


def stage_throttle(resources: dict[str, Any]) -> TokenBucket | None:
    """The throttle a translated template's API stage sets for every method (``ResourcePath: /*``,
    ``HttpMethod: *``), or None when it sets none."""
    for resource in resources.values():
        if resource.get("Type") != "AWS::ApiGateway::Stage":
            continue
        for setting in resource.get("Properties", {}).get("MethodSettings") or []:
            if (
                setting.get("ResourcePath") == "/*"
                and setting.get("HttpMethod") == "*"
                and ("ThrottlingRateLimit" in setting)
            ):
                rate = float(setting["ThrottlingRateLimit"])
                return TokenBucket(rate, float(setting.get("ThrottlingBurstLimit", rate)))
    return None


@dataclass
class Route:
    method: str
    template: str  # the OpenAPI path, e.g. /suppliers/{supplierId}
    pattern: re.Pattern[str]
    function_name: str
    secured: bool
    operation: dict[str, Any]


def routes_from_openapi(body: dict[str, Any]) -> list[Route]:
    global_security = body.get("security", [])
    routes = []
    for path, item in body.get("paths", {}).items():
        for method, operation in item.items():
            if method.lower() not in _METHODS and method != "x-amazon-apigateway-any-method":
                continue
            integration = operation.get("x-amazon-apigateway-integration", {})
            if integration.get("type") != "aws_proxy":
                raise ValueError(f"{method.upper()} {path}: only aws_proxy Lambda integrations are emulated")
            match = re.search(r"functions/(.+)/invocations", integration["uri"])
            if not match:
                raise ValueError(f"{method.upper()} {path}: cannot find the Lambda in {integration['uri']}")
            function_arn = match.group(1)
            security = operation.get("security", global_security)
            regex = (
                "^"
                + re.sub(
                    r"\\\{([^}]+?)(\\\+)?\\\}",
                    lambda m: (
                        f"(?P<{_group(m.group(1))}>.+)" if m.group(2) else f"(?P<{_group(m.group(1))}>[^/]+)"
                    ),
                    re.escape(path),
                )
                + "/?$"
            )
            routes.append(
                Route(
                    method="ANY" if method == "x-amazon-apigateway-any-method" else method.upper(),
                    template=path,
                    pattern=re.compile(regex),
                    function_name=function_arn.rsplit(":", 1)[-1],
                    secured=bool(security),
                    operation=operation,
                )
            )
    # Literal segments win over parameters, as in API Gateway: /suppliers/me before /suppliers/{id}.
    routes.sort(key=lambda r: (r.template.count("{"), -len(r.template)))
    return routes


def _group(name: str) -> str:
    return re.sub(r"\W", "_", name)


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: under load (bench/throughput.py, 16 clients) the
    # kernel reset connections beyond it ("Connection reset by peer"); API Gateway accepts them.
    request_queue_size = 128


class _RecordingReader:
    """Hands ``http.client.parse_headers`` the request's lines and keeps them as they came, so that
    :meth:`_Handler.parse_request` can check what the parser it wraps does not."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.lines: list[bytes] = []

    def readline(self, size: int = -1) -> bytes:
        line = self.wrapped.readline(size)
        self.lines.append(line)
        return line


def _line_body(line: bytes) -> bytes:
    """A raw line without its terminator (CRLF, or LF as http.server also accepts)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


class _Handler(BaseHTTPRequestHandler):
    """http.server's request handler with API Gateway's answers to what it refuses. ``api`` is set
    by :class:`LocalApi` on a subclass."""

    api: LocalApi
    protocol_version = "HTTP/1.1"
    # The status line and headers go out before the body, in separate writes: with Nagle's
    # algorithm on, a keep-alive client's delayed ACK holds each response ~40 ms.
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        self.api.handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def parse_request(self) -> bool:
        """http.server's parse, then what API Gateway also refuses: a bare CR in a header line,
        a header section over :data:`MAX_HEADER_BYTES`, a ``Content-Length`` that is not one number.
        The body stays unread, so the connection is closed after the answer."""
        reader = _RecordingReader(self.rfile)
        self.rfile = reader
        try:
            if not super().parse_request():
                return False
        finally:
            self.rfile = reader.wrapped
        request_line = _line_body(self.raw_requestline)
        header_lines = [_line_body(line) for line in reader.lines]
        error = None
        if any(b"\r" in line for line in [request_line, *header_lines]):
            error = 400, "a header line holds a CR that does not end it"
        elif len(request_line) + sum(len(line.partition(b":")[2].strip()) for line in header_lines) > (
            MAX_HEADER_BYTES
        ):
            error = 431, f"the request line and headers are over {MAX_HEADER_BYTES} bytes"
        else:
            lengths = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
            if len(lengths) > 1 or not all(value.isascii() and value.isdigit() for value in lengths):
                error = 400, "Content-Length must be one non-negative number"
        if error is None:
            return True
        self.send_error(*error)
        return False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every refusal of http.server (400, 414, 431, 505, and 501 for a method no handler has)
        and of :meth:`parse_request`, as API Gateway answers: a method it does not route is an
        unknown route (MISSING_AUTHENTICATION_TOKEN), anything else a DEFAULT_4XX/5XX response.
        The connection is closed after it: what is left of the request is not read."""
        self.close_connection = True
        if self.request_version == self.default_request_version:
            self.request_version = self.protocol_version  # answer with headers, even to a bad request line
        if code == 501:
            self.api.gateway_error(self, "MISSING_AUTHENTICATION_TOKEN")
        else:
            kind = "DEFAULT_5XX" if code >= 500 else "DEFAULT_4XX"
            self.api.gateway_error(
                self, kind, status=code, message=message or self.responses.get(code, ("",))[0]
            )
        self._refused = True

    def finish(self) -> None:
        """After a refusal, read (and drop) what the client still sends for a moment before closing,
        as servers do: closing a socket with unread data resets the connection, and the client
        could lose the answer before reading it."""
        super().finish()
        if getattr(self, "_refused", False):
            deadline, drained = time.monotonic() + _DRAIN_SECONDS, 0
            try:
                self.connection.shutdown(socket.SHUT_WR)
                while drained < _MAX_DRAIN_BYTES and (left := deadline - time.monotonic()) > 0:
                    self.connection.settimeout(left)
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    drained += len(chunk)
            except OSError:
                pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class LocalApi:
    def __init__(
        self,
        body: dict[str, Any],
        runtime: LambdaRuntime,
        issuer: TokenIssuer,
        stage: str,
        host: str = "127.0.0.1",
        port: int = 3000,
        throttle: TokenBucket | None = None,
    ) -> None:
        self.body = body
        self.throttle = throttle
        self.routes = routes_from_openapi(body)
        self.runtime = runtime
        self.issuer = issuer
        self.stage = stage
        self.gateway_responses = body.get("x-amazon-apigateway-gateway-responses", {})
        Handler = type("Handler", (_Handler,), {"api": self})
        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ request handling
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)  # one number: parse_request checked it
        if length > MAX_PAYLOAD_BYTES:
            request.close_connection = True
            self.gateway_error(request, "REQUEST_TOO_LARGE")
            return
        raw_body = request.rfile.read(length) if length else b""
        if split.path == "/openapi.json" and request.command == "GET":
            self._write(request, 200, {"Content-Type": "application/json"}, json.dumps(self.body).encode())
            return
        # The web pages (web/console, web/portal), as CloudFront serves them from the web bucket on AWS.
        if request.command in ("GET", "HEAD") and static.is_static(split.path):
            page = static.serve(split.path)
            self._write(request, page.status, page.headers, page.body)
            return
        route, params = self._match(request.command, split.path)
        if route is None:
            self.gateway_error(request, "MISSING_AUTHENTICATION_TOKEN")
            return
        if self.throttle is not None and not self.throttle.take():
            self.gateway_error(request, "THROTTLED", status=429, message="Too Many Requests")
            return
        claims = None
        if route.secured:
            try:
                claims = self.issuer.verify(request.headers.get("Authorization"))
            except AuthError:
                self.gateway_error(request, "UNAUTHORIZED")
                return
        event = self._event(request, route, params, split.query, raw_body, claims)
        result = self.runtime.invoke(route.function_name, event)
        if result.throttled:
            # Lambda's 429 is not passed on: API Gateway answers 500 (docs/decisions.md D32).
            self.gateway_error(request, "INTEGRATION_FAILURE", status=500)
            return
        if result.errored:
            log.error("integration %s failed on %s %s: %s", route.function_name, request.command,
                      route.template, result.payload[:2000])  # fmt: skip
            self.gateway_error(request, "INTEGRATION_FAILURE")
            return
        self._write_proxy_response(request, result.json())

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            match = route.pattern.match(path)
            if match:
                names = re.findall(r"\{([^}+]+)\+?\}", route.template)
                # Matched on the path as sent (``%2F`` separates no segments), then decoded, as
                # API Gateway hands the parameters over (``a%2Fb`` -> ``a/b``).
                return route, {name: unquote(match.group(_group(name))) for name in names}
        return None, {}

    def _event(
        self,
        request: BaseHTTPRequestHandler,
        route: Route,
        params: dict[str, str],
        query: str,
        raw_body: bytes,
        claims: dict[str, str] | None,
    ) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            multi_headers.setdefault(key, []).append(value)
        multi_query = parse_qs(query, keep_blank_values=True)
        try:
            body: str | None = raw_body.decode("utf-8") if raw_body else None
            is_base64 = False
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(raw_body).decode(), True
        now = time.time()
        path = urlsplit(request.path).path
        return {
            "resource": route.template,
            "path": path,
            "httpMethod": request.command,
            "headers": {k: v[-1] for k, v in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.template,
                "httpMethod": request.command,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "extendedRequestId": str(uuid.uuid4()),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "accountId": "123456789012",
                "apiId": "local",
                "protocol": request.request_version,
                "domainName": request.headers.get("Host", "127.0.0.1"),
                "identity": {
                    "sourceIp": request.client_address[0],
                    "userAgent": request.headers.get("User-Agent"),
                },
                "authorizer": {"claims": claims} if claims is not None else None,
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    def _write_proxy_response(self, request: BaseHTTPRequestHandler, response: Any) -> None:
        if not isinstance(response, dict) or "statusCode" not in response:
            log.error("malformed Lambda proxy response: %r", response)
            self.gateway_error(request, "INTEGRATION_FAILURE")
            return
        headers: dict[str, str] = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for key, values in (response.get("multiValueHeaders") or {}).items():
            headers[str(key)] = ", ".join(str(v) for v in values)
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
        self._write(request, int(response["statusCode"]), headers, data)

    def gateway_error(
        self,
        request: BaseHTTPRequestHandler,
        response_type: str,
        status: int | None = None,
        message: str = "",
    ) -> None:
        """API Gateway's answer of type ``response_type``: the body's gateway response of that type,
        else its DEFAULT_4XX or DEFAULT_5XX (with the type's own status), else API Gateway's default
        ``{"message": ...}``. ``$context.error.message`` and ``messageString`` are filled in, and
        the response's static ``gatewayresponse.header`` parameters are sent."""
        default_status, default_message = _DEFAULT_GATEWAY_RESPONSES.get(response_type, (status, message))
        status, message = status or default_status, message or default_message
        configured = self.gateway_responses.get(response_type)
        if configured:
            status = int(configured.get("statusCode", status))
        else:
            configured = self.gateway_responses.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX") or {}
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": response_type}
        for name, value in (configured.get("responseParameters") or {}).items():
            # Static values only ('...'); API Gateway's mappings from the request are not needed here.
            if name.startswith("gatewayresponse.header.") and value.startswith("'"):
                headers[name.removeprefix("gatewayresponse.header.")] = value.strip("'")
        template = configured.get("responseTemplates", {}).get("application/json")
        if template:
            quoted = json.dumps(message)
            body = template.replace("$context.error.messageString", quoted)
            body = body.replace("$context.error.message", quoted[1:-1]).encode()
        else:
            body = json.dumps({"message": message}).encode()
        self._write(request, status, headers, body)

    @staticmethod
    def _write(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        request.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection"):
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)
