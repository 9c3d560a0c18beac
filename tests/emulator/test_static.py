"""The web pages as the local API serves them (web/<site>/ at /<site>/): content types, index.html,
the trailing-slash redirect, 404s, and no way out of a site's folder; and the pages hold no
secrets and no inline script (their Content-Security-Policy allows scripts from files only)."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest

from marketplace_local import static

WEB = static.WEB_ROOT


@pytest.fixture(scope="module")
def web_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    (root / "console").mkdir()
    (root / "console" / "index.html").write_text("<!doctype html><title>console</title>")
    (root / "console" / "app.js").write_text("export {};")
    (root / "console" / ".hidden.js").write_text("hidden")
    (root / "console" / "notes.txt").write_text("not a web file type")
    (root / "secret.json").write_text('{"secret": true}')
    (root / "shared").mkdir()
    (root / "shared" / "style.css").write_text("body {}")
    return root


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/console/", 200, "text/html; charset=utf-8"),
        ("/console/index.html", 200, "text/html; charset=utf-8"),
        ("/console/app.js", 200, "text/javascript; charset=utf-8"),
        ("/shared/style.css", 200, "text/css; charset=utf-8"),
        ("/console/missing.js", 404, "text/plain; charset=utf-8"),
        ("/console/notes.txt", 404, "text/plain; charset=utf-8"),
        ("/console/.hidden.js", 404, "text/plain; charset=utf-8"),
        ("/console/../secret.json", 404, "text/plain; charset=utf-8"),
        ("/console/%2e%2e/secret.json", 404, "text/plain; charset=utf-8"),
        ("/console/..%2fsecret.json", 404, "text/plain; charset=utf-8"),
        ("/console/..%5csecret.json", 404, "text/plain; charset=utf-8"),
        ("/console//etc/passwd", 404, "text/plain; charset=utf-8"),
        ("/portal/", 404, "text/plain; charset=utf-8"),
    ],
)
def test_serve(web_root, path, status, content_type):
    response = static.serve(path, web_root)
    assert (response.status, response.headers.get("Content-Type")) == (status, content_type)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if status == 200:
        relative = path.strip("/") + ("/index.html" if path.endswith("/") else "")
        assert response.body == (web_root / relative).read_bytes()
    else:
        assert b"secret" not in response.body


def test_a_site_without_its_slash_is_redirected(web_root):
    response = static.serve("/console", web_root)
    assert (response.status, response.headers["Location"]) == (301, "/console/")


def test_only_the_sites_are_static():
    assert (
        static.is_static("/console/") and static.is_static("/portal") and static.is_static("/shared/api.js")
    )
    assert not static.is_static("/consoles") and not static.is_static("/suppliers")


def test_the_local_api_serves_the_pages_without_a_token(stack):
    host, port = stack.api.server.server_address[:2]

    def get(path: str) -> tuple[int, str, bytes]:
        # http.client sends the path as written: no client-side normalisation of "..".
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()

    status, content_type, body = get("/console/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert body == (WEB / "console" / "index.html").read_bytes()
    assert get("/portal/app.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert get("/shared/api.js")[:2] == (200, "text/javascript; charset=utf-8")
    # Each page's config.json, as the deployment writes one: locally the API is the page's origin.
    for site in ("console", "portal"):
        status, content_type, body = get(f"/{site}/config.json")
        assert (status, content_type, json.loads(body)) == (
            200,
            "application/json; charset=utf-8",
            {"apiBaseUrl": "/"},
        )
    assert get("/shared/config.json")[0] == 404
    assert get("/console/../../template.yaml")[0] == 404
    assert get("/portal/%2e%2e/%2e%2e/template.yaml")[0] == 404
    # The API is untouched: its routes still want a token.
    assert get("/suppliers")[0] == 401


def test_the_pages_hold_no_secrets_and_no_inline_script():
    files = [p for p in WEB.rglob("*") if p.is_file()]
    assert {p.relative_to(WEB).parts[0] for p in files} == {"console", "portal", "shared"}
    for path in files:
        text = path.read_text()
        assert not re.search(r"eyJ[\w-]{10,}\.", text), f"{path}: a token"
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path}: an AWS key"
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path}: inline script"
            assert not re.search(r"<[^>]+\son[a-z]+=", text), f"{path}: inline event handler"
            assert "Content-Security-Policy" in text, f"{path}: no Content-Security-Policy"
