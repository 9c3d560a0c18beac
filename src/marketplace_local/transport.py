"""In-process transport from this process's boto3 clients to the moto server running in it.

Every AWS call a handler, the Step Functions engine or a poller makes goes to the moto server on
127.0.0.1 (``AWS_ENDPOINT_URL``). Over HTTP each call costs a TCP connection and a server thread:
werkzeug's development server closes the connection after every response (it does not do
keep-alive), and its threading server starts a thread per connection. Profiling the local stack
under load (bench/throughput.py) showed that transport, on both sides, taking a large share of the
CPU that the handlers and moto need.

This module registers a botocore ``before-send`` handler, the hook moto's own ``mock_aws`` uses, that
hands a request addressed to the stack's moto endpoint straight to the same WSGI application the
moto server serves (:class:`moto.moto_server.werkzeug_app.DomainDispatcherApplication`, on the same
in-process backends), and returns its response to botocore as if it came over the wire. What the
request and response are does not change: botocore still serialises, signs and parses; moto still
dispatches on the same headers, through the same Flask apps. Only the socket is gone. Requests to
any other address, and every client in another process (the aws CLI, the end-to-end tests), go
over HTTP to the moto server as before. It also lists moto's modules once instead of on every
request (:func:`cache_moto_module_list`). ``StackConfig.in_process_aws = False`` switches both off.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders

_lock = threading.Lock()
_transports: dict[str, InProcessTransport] = {}
_registered = False


class _RawBody:
    """The raw-response object botocore reads a body from (``read`` and ``stream``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._read = False

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        if self._read:
            return b""
        self._read = True
        return self._data

    def stream(self, **kwargs: Any) -> Any:
        data = self.read()
        if data:
            yield data


class InProcessTransport:
    """Serves the requests addressed to one moto endpoint from the moto WSGI app, in this thread."""

    def __init__(self, endpoint: str) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        split = urlsplit(endpoint)
        self.scheme, self.netloc = split.scheme, split.netloc
        self.app = DomainDispatcherApplication(create_backend_app)
        self.requests = 0  # approximate under threads: a figure for people, not a test
        self._per_thread = threading.local()

    def requests_in_this_thread(self) -> int:
        return getattr(self._per_thread, "requests", 0)

    def handle(self, request: AWSPreparedRequest) -> AWSResponse:
        from moto.core.request import (
            PRESERVED_HEADER_NAMES_ENVIRON_KEY,
            environ_key_for_header,
            should_preserve_original_header_name,
        )
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        split = urlsplit(request.url)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {_text(k): _text(v) for k, v in request.headers.items()}
        # As werkzeug's server does: a header with an underscore never reaches the environ, except
        # the S3 metadata headers whose spelling moto's request handler preserves.
        builder = EnvironBuilder(
            path=split.path or "/",
            # The request's own host, as its Host header over HTTP: a signature covers it (the
            # engine addresses this server as localhost:<port>, others as 127.0.0.1:<port>).
            base_url=f"{split.scheme}://{split.netloc}",
            query_string=split.query,
            method=request.method,
            headers=[(k, v) for k, v in headers.items() if "_" not in k],
            data=body or b"",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        if "Content-Length" not in headers and not body:
            environ.pop("CONTENT_LENGTH", None)
        environ["REMOTE_ADDR"] = "127.0.0.1"
        preserved: dict[str, str] = {}
        for name, value in headers.items():
            if should_preserve_original_header_name(name):
                key = environ_key_for_header(name)
                preserved.setdefault(key, name)
                environ[key] = value.replace("\r\n", "")
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
        try:
            app_iter, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
            try:
                data = b"".join(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        except Exception:
            # What werkzeug's server does with an exception that escapes the app (moto has a few,
            # e.g. serialising an item another thread is updating): log it and answer 500, which
            # botocore retries. It must never reach the caller as a Python exception.
            from werkzeug.exceptions import InternalServerError

            logging.getLogger("werkzeug").exception("Error on request %s %s", request.method, request.url)
            error = InternalServerError().get_response()
            status, response_headers, data = error.status, error.headers, error.get_data()
        http_headers = HTTPHeaders()
        for key, value in response_headers.items():
            http_headers[key] = value
        self.requests += 1
        self._per_thread.requests = self.requests_in_this_thread() + 1
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), http_headers, _RawBody(data))


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _before_send(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse | None:
    transport = _transports.get(urlsplit(request.url).netloc)
    return transport.handle(request) if transport is not None else None


def cache_moto_module_list() -> None:
    """moto's dispatcher asks, for every request and under its global lock, whether the host is a
    moto module by listing moto's package directory and stat-ing each of its ~150 entries
    (``moto.backends.list_of_moto_modules``): the profile showed that directory walk among the top
    frames, worse when the machine is busy. The directory does not change while the process runs,
    so it is listed once (idempotent; moto's function is kept as ``__wrapped__``)."""
    import moto.backends

    original = moto.backends.list_of_moto_modules
    if getattr(original, "__wrapped__", None) is not None:
        return
    modules = tuple(original())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules.__wrapped__ = original  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = list_of_moto_modules


def install(endpoint: str) -> InProcessTransport:
    """Serve requests to ``endpoint`` in-process, for every botocore session created from now on
    (botocore copies its built-in handlers into each new session); and list moto's modules once
    (:func:`cache_moto_module_list`), for the HTTP server's dispatch as well."""
    global _registered
    from botocore import handlers

    cache_moto_module_list()
    transport = InProcessTransport(endpoint)
    with _lock:
        for netloc in _aliases(endpoint):
            _transports[netloc] = transport
        if not _registered:
            handlers.BUILTIN_HANDLERS.append(("before-send", _before_send))
            _registered = True
    return transport


def uninstall(endpoint: str) -> None:
    """Requests to ``endpoint`` go over HTTP again (sessions keep the handler; it passes them on)."""
    with _lock:
        for netloc in _aliases(endpoint):
            _transports.pop(netloc, None)


def _aliases(endpoint: str) -> set[str]:
    """The endpoint's host:port, and localhost:port for a loopback endpoint: moto's Step Functions
    engine addresses the moto server it runs in as ``http://localhost:<MOTO_PORT>``."""
    split = urlsplit(endpoint)
    aliases = {split.netloc}
    if split.hostname in ("127.0.0.1", "localhost") and split.port is not None:
        aliases |= {f"127.0.0.1:{split.port}", f"localhost:{split.port}"}
    return aliases


def installed(endpoint: str) -> InProcessTransport | None:
    return _transports.get(urlsplit(endpoint).netloc)
