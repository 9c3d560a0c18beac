"""Webhook targets inside the network: every form of an internal address is refused when the
webhook is registered, and a delivery connects only to an address it checked itself.

The resolver is injected (as ``http_post`` and ``now`` are), so a name can resolve to a public
address at registration and to an internal one at delivery, as DNS rebinding does. The receivers
listen on 127.0.0.1; a test allows a receiver's port only when it means the delivery to reach it.
The refused deliveries in the queue-driven flow (FAILED, dead-lettered, the record's words) are
in test_webhooks.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from marketplace import webhooks
from marketplace.errors import InvalidInput
from marketplace.principal import Principal
from marketplace.webhook_targets import parse_target
from marketplace.webhooks import REFUSED_REASON, Webhooks
from tests.e2e.test_local_stack import SUPPLIER
from tests.receivers import Receiver
from tests.unit.test_webhooks import a_supplier

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZlhZWg=="  # Standard Webhooks form: the key "0123456789abcdefXYZ"
PUBLIC = ipaddress.ip_address("93.184.215.14")
METADATA = ipaddress.ip_address("169.254.169.254")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def resolving(*answers: list[Any]) -> Any:
    """A resolver that answers ``answers[0]`` to its first lookup, ``answers[1]`` to the second, ...
    (the last one from then on), and records each (host, port) it was asked."""
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[Any]:
        asked.append((host, port))
        return list(answers[min(len(asked), len(answers)) - 1])

    resolver.asked = asked  # type: ignore[attr-defined]
    return resolver


def supplier(tenant: str, supplier_id: str) -> Principal:
    return Principal(f"user-{supplier_id}", tenant, frozenset({"supplier"}), supplier_id)


# ------------------------------------------------------------------------------------ registration
# Accepted before these rules (each case fails on the code before them).
DISGUISED_FORMS = [
    "https://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
    "https://0xA9FEA9FE/latest/meta-data/",  # ... in hex
    "https://0xa9.0xfe.0xa9.0xfe/",  # ... hex per part
    "https://0251.0376.0251.0376/latest/meta-data/",  # ... in octal
    "https://169.254.43518/",  # ... in three parts
    "https://127.1/",  # 127.0.0.1 in two parts
    "https://0/",  # 0.0.0.0, which reaches this machine
    "https://127.0.0.1./",  # trailing dot
    "https://localhost./",
    "https://LOCALHOST/",
    "https://[::1]/",
    "https://instance-data/latest/meta-data/",  # EC2's name for the metadata endpoint
    "https://instance-data.ec2.internal/",
    "https://app.localhost/",
    "https://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
    "https://[64:ff9b::a00:7]/",  # NAT64 around 10.0.0.7
    "https://224.0.0.1/",  # multicast (is_global alone lets it through)
    "https://[ff02::1]/",
    "https://1.2.3.4.5/",  # numeric, but no address: a URL parser refuses it
    "https://%31%32%37.0.0.1/",  # percent-encoded digits
    "https://xn--99999999999.example/",  # punycode that does not decode
    "https://xn--8g7ccp.xn--8g7ccp.xn--8g7ccp.xn--8g7ccp/",  # fullwidth digits, which IDNA maps to ASCII
    "http://127.0.0.1:8080/",  # loopback on a port no test allowed (the local stack allowed every port)
]
# Refused before too: kept so that the new parser does not let them through.
PLAIN_FORMS = [
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "https://[::ffff:a9fe:a9fe]/",
    "https://[fd00:ec2::254]/",  # the metadata endpoint over IPv6 (unique-local)
    "https://[fe80::1]/",
    "https://10.0.0.7/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",  # shared address space
    "https://240.0.0.1/",  # reserved
]


@pytest.mark.parametrize("url", DISGUISED_FORMS + PLAIN_FORMS)
def test_every_form_of_an_internal_address_is_refused_at_registration(url, table, tenant, monkeypatch):
    monkeypatch.delenv("WEBHOOKS_LOOPBACK_PORTS", raising=False)
    hooks = Webhooks(table=table, resolver=resolving([PUBLIC]))
    with pytest.raises(InvalidInput) as raised:
        hooks.register(supplier(tenant, "s-1"), "s-1", {"url": url, "secret": SECRET})
    ((field, reason),) = [(f.field, f.reason) for f in raised.value.fields]
    assert field == "url" and reason.startswith("must")


@pytest.mark.parametrize(
    "answer",
    [
        [LOOPBACK],
        [METADATA],
        [PUBLIC, ipaddress.ip_address("10.1.2.3")],
        [ipaddress.ip_address("fd00::1"), PUBLIC],
    ],
)
def test_a_name_that_resolves_to_an_internal_address_is_refused_at_registration(answer, table, tenant):
    """As under wildcard-DNS services (127.0.0.1.<service>): every address the name has counts."""
    resolver = resolving(answer)
    hooks = Webhooks(table=table, resolver=resolver)
    with pytest.raises(InvalidInput) as raised:
        hooks.register(
            supplier(tenant, "s-1"), "s-1", {"url": "https://127.0.0.1.wildcard.example/", "secret": SECRET}
        )
    assert [f.field for f in raised.value.fields] == ["url"]
    assert resolver.asked == [("127.0.0.1.wildcard.example", 443)]


def test_the_api_answers_400_naming_the_url_and_the_reason(stack, tenant):
    retailer = {"Authorization": f"Bearer {stack.issuer.mint(tenant, 'retailer')}"}
    created = requests.post(f"{stack.api_url}/suppliers", headers=retailer, timeout=10,
                            json={**SUPPLIER, "taxId": f"DE{uuid.uuid4().int % 10**9:09d}"})  # fmt: skip
    assert created.status_code == 202, created.text
    supplier_id = created.json()["supplierId"]
    token = stack.issuer.mint(tenant, "supplier", supplier_id=supplier_id)

    answer = requests.put(f"{stack.api_url}/suppliers/{supplier_id}/webhook", timeout=10,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"url": "https://2852039166/latest/meta-data/", "secret": SECRET})  # fmt: skip

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["fields"] == [
        {"field": "url", "reason": "must not point at a private, loopback, link-local or reserved address"}
    ]


def test_loopback_is_allowed_only_on_a_port_a_test_allowed_never_the_stacks_own(stack, tenant):
    own_ports = (stack.config.api_port, stack.config.moto_port)
    for port in own_ports:
        with pytest.raises(ValueError, match="not a test receiver's port"):
            stack.allow_webhook_port(port)
    receiver = Receiver(stack)  # allows its own port
    try:
        assert webhooks.url_errors(receiver.url) == []
        assert webhooks.url_errors(receiver.url.replace("127.0.0.1", "127.1")) == []  # the same address
        for port in own_ports:
            (error,) = webhooks.url_errors(f"http://127.0.0.1:{port}/suppliers")
            assert (error.field, error.reason) == ("url", "must not point at this machine")
    finally:
        receiver.close()


def test_host_forms_are_normalised_as_the_resolver_reads_them():
    assert parse_target("https://2852039166/x").host == "169.254.169.254"
    assert parse_target("https://0xA9FEA9FE/").host == "169.254.169.254"
    assert parse_target("https://0251.0376.0251.0376/").host == "169.254.169.254"
    assert parse_target("https://127.1/").host == "127.0.0.1"
    assert parse_target("https://0/").host == "0.0.0.0"  # noqa: S104 - a value compared, nothing bound
    assert parse_target("https://Hooks.Example.COM./a?b=1") == parse_target("https://hooks.example.com/a?b=1")
    assert parse_target("https://[::FFFF:7F00:1]:8443/").host == "::ffff:7f00:1"
    assert parse_target("https://xn--bcher-kva.example/").host == "xn--bcher-kva.example"  # bücher


# ------------------------------------------------------------------------------------ delivery
def delivery_for(supplier_id: str) -> dict[str, Any]:
    return {"deliveryId": "20240501T120000000Z-" + "0" * 32, "event": "supplier_order.awaiting_acceptance",
            "payload": '{"id":"x"}', "supplierId": supplier_id}  # fmt: skip


def never_posts(*_: Any) -> Any:
    raise AssertionError("a refused target must not be contacted")


def test_a_url_registered_under_older_rules_is_refused_at_delivery_without_a_lookup():
    """A webhook stored before these rules: its URL is judged again, as the resolver reads it."""
    for url in ("https://2852039166/", "https://instance-data/", "https://[::ffff:a9fe:a9fe]/"):
        attempt = webhooks.deliver(delivery_for("s-1"), {"url": url, "secret": SECRET}, never_posts,
                                   resolver=resolving([PUBLIC]))  # fmt: skip
        assert (attempt.ok, attempt.refused, attempt.reason) == (False, True, REFUSED_REASON)


def test_a_name_rebound_to_an_internal_address_after_registration_is_refused_at_delivery(table, tenant):
    resolver = resolving([PUBLIC], [PUBLIC, METADATA])  # public when registered, internal at delivery
    hooks = Webhooks(table=table, http_post=never_posts, resolver=resolver)
    url = "https://hooks.rebinding.example/orders"
    supplier_id = a_supplier(table, tenant)
    hooks.register(supplier(tenant, supplier_id), supplier_id, {"url": url, "secret": SECRET})  # public now

    attempt = webhooks.deliver(
        delivery_for(supplier_id), hooks.webhook(tenant, supplier_id), never_posts, resolver=resolver
    )

    assert (attempt.ok, attempt.refused, attempt.reason) == (False, True, REFUSED_REASON)
    assert resolver.asked == [("hooks.rebinding.example", 443)] * 2


def test_the_connection_goes_to_the_address_that_was_checked(stack):
    """The name exists in no DNS: the POST reaches the receiver only through the one lookup the
    delivery checked, and the request still names the URL's host."""
    receiver = Receiver(stack, secret=SECRET)
    try:
        resolver = resolving([LOOPBACK])
        url = f"http://hooks.pinned.example:{receiver.port}/hooks"
        attempt = webhooks.deliver(delivery_for("s-1"), {"url": url, "secret": SECRET}, resolver=resolver)
        assert (attempt.ok, attempt.status_code) == (True, 204)
        assert resolver.asked == [("hooks.pinned.example", receiver.port)]  # once: no second lookup
        (request,) = receiver.requests
        assert request["headers"]["Host"] == f"hooks.pinned.example:{receiver.port}"
    finally:
        receiver.close()


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A TLS server on 127.0.0.1 with a self-signed certificate for hooks.tls.example, recording
    the server name (SNI) each client asked for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.tls.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.tls.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))  # fmt: skip
    seen: dict[str, Any] = {"sni": [], "posts": 0}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda _sock, server_name, _ctx: seen["sni"].append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["posts"] += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["port"] = server.server_address[1]
    yield seen
    server.shutdown()
    server.server_close()


def test_https_connects_to_the_checked_address_with_the_host_name_for_sni_and_verification(
    tls_receiver, stack
):
    stack.allow_webhook_port(tls_receiver["port"])
    resolver = resolving([LOOPBACK])
    url = f"https://hooks.tls.example:{tls_receiver['port']}/hooks"

    attempt = webhooks.deliver(delivery_for("s-1"), {"url": url, "secret": SECRET}, resolver=resolver)

    assert tls_receiver["sni"] == ["hooks.tls.example"]  # the checked address, the URL's name
    assert attempt.ok is False and attempt.reason is not None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.reason  # a self-signed certificate is not trusted
    assert tls_receiver["posts"] == 0
    assert resolver.asked == [("hooks.tls.example", tls_receiver["port"])]
