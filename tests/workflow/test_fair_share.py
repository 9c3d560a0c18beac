"""The fair share (D52), through the local gateway and the API function's instances as on AWS: a
tenant flooding the API far above its limit gets 429s (never a 5xx), each in the error shape with
``Retry-After``, and is let in no more than its limit a second, while another tenant's requests, made
at the same time, all succeed.

The tier's limit (3,000 requests/s for a standard tenant) is beyond what the local stack serves, so
the test sets it to a few requests a second in every instance of the API function
(``stack.runtime.patched``); the limiter, its table and the route policy are the product's own."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.workflow

LIMIT = 10  # requests per second, for the test
FLOODERS = 6  # A's clients, each sending as fast as it is answered
SECONDS = 4.0
B_PER_SECOND = 4  # B's pace: under the limit


def call(stack: Any, session: Any, token: str) -> requests.Response:
    """GET /suppliers as the tenant of ``token``, on ``session`` (or ``requests`` itself)."""
    return session.get(f"{stack.api_url}/suppliers", headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_a_tenant_flooding_the_api_is_held_to_its_limit_while_another_is_served(stack, tenant):
    flooder, other = tenant, f"{tenant}-b"
    tokens = {t: stack.issuer.mint(t, "retailer") for t in (flooder, other)}
    answers: dict[str, list[tuple[float, requests.Response]]] = {flooder: [], other: []}
    lock = threading.Lock()

    def flood(deadline: float) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                answer = call(stack, session, tokens[flooder])
                with lock:
                    answers[flooder].append((time.time(), answer))

    def steady(deadline: float) -> None:
        with requests.Session() as session:
            while (now := time.monotonic()) < deadline:
                answer = call(stack, session, tokens[other])
                with lock:
                    answers[other].append((time.time(), answer))
                time.sleep(max(0.0, now + 1 / B_PER_SECOND - time.monotonic()))

    # Every instance of the API function warm first (an instance's first request imports the
    # handler: seconds here), so that the timed part measures the limit, not cold starts.
    warm = stack.issuer.mint(f"{tenant}-warm", "retailer")
    with ThreadPoolExecutor(FLOODERS) as pool:
        warmed = pool.map(lambda _: call(stack, requests, warm), range(3 * FLOODERS))
        assert {answer.status_code for answer in warmed} == {200}
    limits = {"standard": LIMIT, "premium": LIMIT}
    with stack.runtime.patched("ApiFunction", "marketplace.tenants", "REQUEST_LIMITS", lambda _: limits):
        deadline = time.monotonic() + SECONDS
        started = time.monotonic()
        with ThreadPoolExecutor(FLOODERS + 1) as pool:
            waits = [pool.submit(flood, deadline) for _ in range(FLOODERS)] + [pool.submit(steady, deadline)]
            for wait in waits:
                wait.result()
        took = time.monotonic() - started

    a = Counter(answer.status_code for _, answer in answers[flooder])
    b = Counter(answer.status_code for _, answer in answers[other])
    print(
        f"\nfair share, {took:.1f} s: A sent {sum(a.values())} ({sum(a.values()) / took:.0f}/s), "
        f"let in {a[200]} ({a[200] / took:.1f}/s), refused {a[429]} with 429; "
        f"B sent {sum(b.values())} ({sum(b.values()) / took:.1f}/s), {b[200]} answered 200"
    )
    # B: every request answered, none refused, at its own pace.
    assert set(b) == {200}, b
    # At its pace: more than half of it (a machine loaded by other work slows every answer).
    assert sum(b.values()) >= B_PER_SECOND * SECONDS / 2, "B kept its pace"
    # A: refused far more often than let in, with 429s only: no 5xx, no other error.
    assert set(a) == {200, 429}, a
    assert a[429] > a[200], a
    # Never more than the limit in any second (a second's count is shared by every instance).
    admitted_per_second = Counter(int(at) for at, answer in answers[flooder] if answer.status_code == 200)
    # An answer's second is read by the client after the response: one in flight may land in the next.
    assert max(admitted_per_second.values()) <= LIMIT + FLOODERS, admitted_per_second
    assert a[200] <= LIMIT * (int(took) + 2), (a[200], took)
    refused = next(answer for _, answer in answers[flooder] if answer.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"] == (
        f"tenant {flooder} used up its request limit of {LIMIT} requests per second (standard tier): "
        f"retry after {refused.headers['Retry-After']} s"
    )
