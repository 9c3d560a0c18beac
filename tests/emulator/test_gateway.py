"""The local API answers what API Gateway refuses as API Gateway does: a JSON gateway response in
the API's error shape, never an HTML page of Python's http.server or a dropped connection. The
malformed requests go over raw sockets: no HTTP client would send them."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from marketplace_local.api import MAX_HEADER_BYTES, TokenBucket


def _send(stack: Any, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends ``request`` as is and reads one answer: status, headers (lower-case names), body."""
    split = urlsplit(stack.api_url)
    with socket.create_connection((split.hostname, split.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"the connection closed without an answer; got {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
        }
        while len(body) < int(headers.get("content-length", 0)):
            chunk = conn.recv(65536)
            assert chunk, "the connection closed in the middle of the body"
            body += chunk
    return int(status_line.split(" ")[1]), headers, body


def _error(stack: Any, request: bytes) -> tuple[int, dict[str, Any]]:
    status, headers, body = _send(stack, request)
    assert headers["content-type"] == "application/json", body
    document = json.loads(body)
    assert set(document) == {"error"} and {"code", "message"} <= set(document["error"]), document
    return status, document["error"]


def _host(stack: Any) -> bytes:
    return urlsplit(stack.api_url).netloc.encode()


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT", b"BREW"])
def test_a_method_api_gateway_does_not_route_is_an_unknown_route(stack, method):
    status, error = _error(stack, method + b" /suppliers HTTP/1.1\r\nHost: " + _host(stack) + b"\r\n\r\n")
    assert (status, error["code"]) == (
        404,
        "not_found",
    )  # MISSING_AUTHENTICATION_TOKEN, as template.yaml says


def test_path_parameters_are_percent_decoded_and_an_encoded_slash_stays_in_its_segment(stack, monkeypatch):
    """API Gateway (REST) matches the route on the path as sent, hands the function the path as
    sent and the path parameters decoded."""
    events = []
    invoke = stack.api.runtime.invoke
    monkeypatch.setattr(
        stack.api.runtime,
        "invoke",
        # Only the gateway's calls: a webhook delivery left by an earlier test may invoke too.
        lambda name, event: (events.append(event) if "httpMethod" in event else None) or invoke(name, event),
    )
    token = stack.issuer.mint("t-gateway", "admin").encode()
    status, _ = _error(
        stack,
        b"GET /suppliers/caf%C3%A9%2Fx%20y HTTP/1.1\r\nHost: "
        + _host(stack)
        + b"\r\nAuthorization: Bearer "
        + token
        + b"\r\n\r\n",
    )
    assert status == 404  # no such supplier: the function answered, the route was found
    (event,) = events
    assert event["resource"] == "/suppliers/{supplierId}"
    assert event["pathParameters"] == {"supplierId": "café/x y"}
    assert event["path"] == "/suppliers/caf%C3%A9%2Fx%20y"


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b"\xd9\xa3", b"3, 4"])
def test_a_content_length_that_is_not_one_number_is_a_400(stack, length):
    status, error = _error(
        stack,
        b"POST /suppliers HTTP/1.1\r\nHost: "
        + _host(stack)
        + b"\r\nContent-Length: "
        + length
        + b"\r\n\r\n{}",
    )
    assert (status, error["code"]) == (400, "bad_request")
    assert "Content-Length" in error["message"]


def test_two_different_content_lengths_are_a_400(stack):
    status, error = _error(
        stack,
        b"POST /suppliers HTTP/1.1\r\nHost: "
        + _host(stack)
        + b"\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\n{}{}",
    )
    assert (status, error["code"]) == (400, "bad_request")


def test_a_bare_cr_in_a_header_is_refused_not_split_into_two_headers(stack):
    token = stack.issuer.mint("t-gateway", "admin").encode()
    status, error = _error(
        stack,
        b"GET /suppliers HTTP/1.1\r\nHost: " + _host(stack) + b"\r\n"
        b"X-Note: hello\rAuthorization: Bearer " + token + b"\r\n\r\n",
    )
    assert (status, error["code"]) == (400, "bad_request")
    assert "CR" in error["message"]


@pytest.mark.parametrize(
    "size",
    [MAX_HEADER_BYTES, 70_000],  # over API Gateway's limit; over http.server's own line limit too
)
def test_a_header_section_over_api_gateways_limit_is_a_431_in_the_error_shape(stack, size):
    status, error = _error(
        stack,
        b"GET /suppliers HTTP/1.1\r\nHost: "
        + _host(stack)
        + b"\r\nAuthorization: Bearer "
        + b"a" * size
        + b"\r\n\r\n",
    )
    assert (status, error["code"]) == (431, "bad_request")


def test_too_many_headers_and_a_too_long_request_line_are_json_too(stack):
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
    assert _error(stack, b"GET /suppliers HTTP/1.1\r\n" + many + b"\r\n")[0] == 431
    assert _error(stack, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")[0] == 414
    # A 5xx: the template has no DEFAULT_5XX, so API Gateway's own {"message"} shape, still JSON.
    status, headers, body = _send(stack, b"GET /suppliers HTTP/9.9\r\n\r\n")
    assert (status, headers["content-type"], json.loads(body)) == (
        505,
        "application/json",
        {"message": "Invalid HTTP version (9.9)"},
    )


def test_a_header_section_just_under_the_limit_reaches_the_authorizer(stack):
    host = _host(stack)
    request_line = b"GET /suppliers HTTP/1.1"
    room = MAX_HEADER_BYTES - len(request_line) - len(host) - len(b"Bearer ")
    status, error = _error(
        stack, request_line + b"\r\nHost: " + host + b"\r\nAuthorization: Bearer " + b"a" * room + b"\r\n\r\n"
    )
    assert (status, error["code"]) == (401, "unauthorized")


def test_the_stage_throttle_is_api_gateway_s_token_bucket():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False], "a full bucket: the burst"
    now[0] += 0.5  # one token back at two a second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 10  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3


def test_past_the_stage_limit_the_gateway_answers_its_throttled_response_with_retry_after(stack, monkeypatch):
    """The stage's limit is template.yaml's (MarketplaceApi's MethodSettings); past it the gateway
    answers THROTTLED (the template's 429, with ``Retry-After``) before any function runs."""
    bucket = stack.api.throttle
    assert (bucket.rate, bucket.burst) == (10000.0, 5000.0)
    monkeypatch.setattr(bucket, "rate", 0.0)
    monkeypatch.setattr(bucket, "tokens", 0.0)
    status, headers, body = _send(stack, b"GET /health HTTP/1.1\r\nHost: " + _host(stack) + b"\r\n\r\n")
    assert (status, headers["retry-after"], json.loads(body)["error"]["code"]) == (429, "1", "throttled")
    monkeypatch.undo()
    status, _, _ = _send(stack, b"GET /health HTTP/1.1\r\nHost: " + _host(stack) + b"\r\n\r\n")
    assert status == 200
