"""The web pages (admin console, supplier portal) served by the local API, as CloudFront serves
them from the web bucket on AWS: ``web/<site>/...`` at ``/<site>/...``, ``index.html`` for a folder.

Hand-written rather than ``http.server.SimpleHTTPRequestHandler``: that handler serves a whole
directory tree with directory listings and guesses types from the host's mime table; here only the
named sites and known file types are served, a path can never leave its site's folder, and the
pages get the same security headers on every host.

Each page reads ``config.json`` beside it for the API's base URL; the deployment writes
``{"apiBaseUrl": "/api"}`` (tools/deploy_web.py), and the local stack answers the same file with its
own API's base, the page's origin, so a page finds its config here as on AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from marketplace_local.template import ROOT

WEB_ROOT = ROOT / "web"
SITES = ("console", "portal", "shared")
# The pages that read config.json, and what it says locally: the API is at the page's origin.
CONFIG_SITES = ("console", "portal")
LOCAL_CONFIG = b'{"apiBaseUrl": "/"}\n'
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class StaticResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def is_static(path: str) -> bool:
    """Whether the request path belongs to one of the sites (then the API routes never see it)."""
    return any(path == f"/{site}" or path.startswith(f"/{site}/") for site in SITES)


def serve(path: str, web_root: Path = WEB_ROOT) -> StaticResponse:
    site, _, rest = path.lstrip("/").partition("/")
    if path == f"/{site}":  # relative links need the trailing slash
        return StaticResponse(301, {"Location": f"/{site}/", **HEADERS}, b"")
    if site in CONFIG_SITES and rest == "config.json":
        return StaticResponse(200, {"Content-Type": CONTENT_TYPES[".json"], **HEADERS}, LOCAL_CONFIG)
    segments = unquote(rest).split("/")
    if any(s in ("..", ".") or "\\" in s or "\x00" in s or s.startswith(".") for s in segments):
        return _not_found()
    base = (web_root / site).resolve()
    target = base.joinpath(*[s for s in segments if s])
    if target.is_dir():
        target = target / "index.html"
    target = target.resolve()
    content_type = CONTENT_TYPES.get(target.suffix)
    if not target.is_relative_to(base) or not target.is_file() or content_type is None:
        return _not_found()
    return StaticResponse(200, {"Content-Type": content_type, **HEADERS}, target.read_bytes())


def _not_found() -> StaticResponse:
    return StaticResponse(404, {"Content-Type": "text/plain; charset=utf-8", **HEADERS}, b"not found\n")
