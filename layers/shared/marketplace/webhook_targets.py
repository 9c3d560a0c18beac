"""Where a webhook may point, and the one way a delivery connects there.

A supplier names the URL; our function POSTs to it from inside AWS, where the instance metadata
endpoint, the VPC and (on Lambda) the runtime API on 127.0.0.1 are reachable. So a URL is checked
as the resolver and the HTTP client will read it, not as it looks:

* **The host is normalised** (:func:`parse_target`): a trailing dot is dropped (``localhost.`` is
  ``localhost``), names are lower-cased and must be DNS names (letters, digits, hyphens, at least two
  labels, no suffix that only resolves inside a network such as ``.internal`` or ``.localhost``),
  punycode labels must decode, and every numeric IPv4 form that ``inet_aton`` (so ``getaddrinfo``)
  accepts is read as the address it means: one number (``2852039166``), hex (``0xA9FEA9FE``), octal
  (``0251.0376.0251.0376``), fewer than four parts (``127.1``, ``0``). A host whose last label is
  numeric but is no valid address is refused, as a URL parser would. IPv6 literals (in brackets) are
  judged by the IPv4 address they embed, if any (IPv4-mapped, 6to4, Teredo, NAT64).
* **Every address counts** (:func:`refusal`): loopback, private, link-local, multicast, reserved,
  unspecified, shared (100.64/10) and unique-local addresses of both families are refused, for every
  address a name resolves to, not only the first.
* **The connection goes to the address that was checked** (:func:`pinned_post`): the name is
  resolved once, at delivery, and the socket is opened to one of those addresses; TLS still sends
  the URL's host name for SNI and verifies the certificate against it, and the Host header is the
  URL's. No second lookup happens between the check and the connect, so a name that is rebound to
  an internal address after the check (DNS rebinding) is never reached.

Loopback is the one exception, for local stacks and tests only: an address on 127.0.0.0/8 or ::1 is
accepted on the ports listed in ``WEBHOOKS_LOOPBACK_PORTS`` (comma-separated), which the local stack
sets for the receivers a test starts on purpose, never for its own API or moto ports. The deployed
template never sets it (on Lambda, 127.0.0.1 is the runtime API).

Hand-written with the standard library (``ipaddress``, ``socket``, ``http.client``, ``ssl``): the
standard ``ipaddress`` module refuses the legacy numeric forms on purpose, and no HTTP client in the
standard library lets a caller choose the address it connects to.
"""

from __future__ import annotations

import codecs
import http.client
import ipaddress
import os
import re
import socket
import ssl
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK_PORTS_VARIABLE = "WEBHOOKS_LOOPBACK_PORTS"
LOOPBACK_NAMES = frozenset({"localhost"})
# Suffixes that resolve only inside a network or on this machine, never on the public internet
# (RFC 6761 localhost/test/invalid, RFC 6762 local, RFC 8375 home.arpa, ICANN's internal).
PRIVATE_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa", "test", "invalid")
MAX_HOST_LENGTH = 253

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A label that a URL parser and inet_aton read as a number: decimal, octal (leading 0) or hex (0x).
_NUMERIC = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class TargetRefused(ValueError):
    """The URL cannot receive webhooks; ``str()`` says why, in words fit for the supplier."""


@dataclass(frozen=True)
class Target:
    """A webhook URL as the client will use it."""

    scheme: str  # https, or http (loopback only)
    host: str  # normalised: lower case, no trailing dot; an IP literal in its canonical form
    port: int
    path: str  # path and query, at least "/"
    address: IPAddress | None  # when the host is an IP literal, in whichever form it was written

    @property
    def is_loopback_name(self) -> bool:
        return self.host in LOOPBACK_NAMES


def loopback_ports() -> frozenset[int]:
    """The loopback ports this process may deliver to (read on every call: tests add theirs)."""
    raw = os.environ.get(LOOPBACK_PORTS_VARIABLE, "")
    return frozenset(int(p) for p in raw.split(",") if p.strip().isdigit())


# ------------------------------------------------------------------------------------------- parsing
def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address ``inet_aton`` reads ``host`` as (1 to 4 dot-separated numbers, each decimal,
    octal or hex, the last filling the remaining bytes); None when it is no such number. Raises
    TargetRefused for a host that looks numeric (its last label is a number) but is no address."""
    labels = host.split(".")
    if not _NUMERIC.fullmatch(labels[-1]):
        return None
    if not 1 <= len(labels) <= 4 or not all(_NUMERIC.fullmatch(label) for label in labels):
        raise TargetRefused("must name a valid IPv4 address or a DNS name")
    try:
        values = [_number(label) for label in labels]
    except ValueError:
        raise TargetRefused("must name a valid IPv4 address or a DNS name") from None
    *parts, last = values
    if any(v > 255 for v in parts) or last >= 256 ** (5 - len(values)):
        raise TargetRefused("must name a valid IPv4 address or a DNS name")
    number = 0
    for value in parts:
        number = number * 256 + value
    return ipaddress.IPv4Address(number * 256 ** (5 - len(values)) + last)


def _number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label)


def _check_name(host: str) -> None:
    if len(host) > MAX_HOST_LENGTH:
        raise TargetRefused(f"must have a host name of at most {MAX_HOST_LENGTH} characters")
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise TargetRefused("must name a DNS host (letters, digits and hyphens; punycode for other letters)")
    for label in labels:
        if label.startswith("xn--"):
            _check_punycode(label)
    if host in LOOPBACK_NAMES:
        return
    if len(labels) < 2:
        raise TargetRefused(
            "must name a fully qualified host (a single-label name resolves only inside a network)"
        )
    if any(host == suffix or host.endswith("." + suffix) for suffix in PRIVATE_SUFFIXES):
        raise TargetRefused("must name a host on the public internet (this suffix resolves only locally)")


def _check_punycode(label: str) -> None:
    """A punycode label must decode to letters that are not plain ASCII in disguise (fullwidth
    digits and dots, which IDNA would map to ``127.0.0.1``)."""
    try:
        decoded = codecs.decode(label[4:].encode("ascii"), "punycode")
    except (UnicodeError, ValueError):
        raise TargetRefused("must use punycode (xn--) labels that decode") from None
    folded = unicodedata.normalize("NFKC", decoded)
    if decoded.isascii() or folded.isascii() or "." in folded or not decoded.isprintable():
        raise TargetRefused(
            "must use punycode (xn--) only for letters beyond ASCII, never for digits or dots"
        )


def parse_target(url: str) -> Target:
    """The URL as the client will use it, or TargetRefused saying why it cannot be one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetRefused("must be an https URL")
    raw = parts.hostname or ""
    if not raw:
        raise TargetRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not contain credentials")
    port = port if port is not None else (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if ":" in raw:  # urlsplit took it from brackets
        try:
            v6 = ipaddress.IPv6Address(raw)
        except ValueError:
            raise TargetRefused("must name a valid IPv6 address in brackets") from None
        return Target(scheme, str(v6), port, path, v6)
    host = raw[:-1] if raw.endswith(".") else raw
    if not host or host.endswith("."):
        raise TargetRefused("must name a host")
    v4 = parse_ipv4(host)
    if v4 is not None:
        return Target(scheme, str(v4), port, path, v4)
    _check_name(host)
    return Target(scheme, host, port, path, None)


# ------------------------------------------------------------------------------------------- addresses
def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet: not loopback, private, link-local,
    multicast, reserved, unspecified, shared or unique-local; for IPv6, neither is the IPv4
    address it embeds. (``is_global`` alone lets multicast through.)"""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])  # without a zone
        embedded = _embedded_ipv4(address)
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if embedded is not None and not is_public(embedded):
            return False
        if address.is_site_local:
            return False
    elif address in _SHARED:
        return False
    return address.is_global and not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )  # fmt: skip


def is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def allowed(address: IPAddress, port: int) -> bool:
    """A public address, or a loopback address on a port this process allows (tests, local stack)."""
    return is_public(address) or (is_loopback(address) and port in loopback_ports())


def refusal(target: Target, addresses: Sequence[IPAddress]) -> str | None:
    """Why a delivery must not connect to ``addresses`` (those of ``target``), or None. The
    reason names no address and no port, so that it tells the supplier nothing about the network."""
    if not addresses:
        return "the host name resolved to no address"
    if not all(allowed(a, target.port) for a in addresses):
        return "the URL's host is not a public internet address"
    if target.scheme == "http" and not all(is_loopback(a) for a in addresses):
        return "the URL must use https"
    return None


# ------------------------------------------------------------------------------------------- resolving
# (host, port) -> every address the host resolves to; raises OSError when it resolves to none.
Resolver = Callable[[str, int], list[IPAddress]]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``getaddrinfo`` gives for ``host`` (both families), in its order, once each."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def addresses_of(target: Target, resolver: Resolver) -> list[IPAddress]:
    """The addresses a delivery to ``target`` may connect to: its IP literal, or what the name
    resolves to now. Raises OSError when the name does not resolve."""
    if target.address is not None:
        return [target.address]
    return list(resolver(target.host, target.port))


# ------------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class HttpResult:
    """What one POST came to: the response's status code, or why there was no response."""

    status_code: int | None = None
    error: str | None = None


# (target, checked addresses, body, headers, timeout in seconds) -> result; connects only to one
# of the addresses given, never looks the host up again, never raises for a network failure.
HttpPost = Callable[[Target, Sequence[IPAddress], bytes, Mapping[str, str], float], HttpResult]


def _connect(addresses: Sequence[IPAddress], port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of the checked addresses that accepts one."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            sock = socket.create_connection((str(address), port), timeout)
        except OSError as exc:
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, addresses: Sequence[IPAddress], timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the URL's host for SNI and certificate verification."""

    def __init__(self, target: Target, addresses: Sequence[IPAddress], timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def pinned_post(
    target: Target, addresses: Sequence[IPAddress], body: bytes, headers: Mapping[str, str], timeout: float
) -> HttpResult:
    """POST to one of ``addresses`` (checked by the caller). Redirects are not followed (the
    signed body goes to the registered URL or nowhere): a 3xx is returned as it is. The response
    body is not read: only the status matters, and a receiver cannot keep us busy with a large one."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, addresses, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        return HttpResult(status_code=connection.getresponse().status)
    except TimeoutError:
        return HttpResult(error=f"timed out after {timeout:g} s")
    except ssl.SSLError as error:
        return HttpResult(error=f"TLS failed: {error.reason or error}")
    except (OSError, http.client.HTTPException) as error:
        return HttpResult(error=f"connection failed: {type(error).__name__}: {error}")
    finally:
        connection.close()
