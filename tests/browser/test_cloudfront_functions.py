"""The CloudFront Functions in template.yaml, run in Chromium's JavaScript engine with the event
shape CloudFront gives them: folder paths reach their index.html, the root and the bare site names
are redirected, and /api/... reaches API Gateway without its prefix (so the pages and the API share
one origin on AWS, as they do on the local stack)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from marketplace_local.template import load_sam

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def page(browser) -> Iterator[Any]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@functools.cache
def function_code(logical_id: str) -> str:
    return load_sam()["Resources"][logical_id]["Properties"]["FunctionCode"]


def run(page: Any, logical_id: str, uri: str) -> dict[str, Any]:
    code = function_code(logical_id)
    event = {"version": "1.0", "request": {"method": "GET", "uri": uri, "headers": {}, "querystring": {}}}
    return page.evaluate(f"(() => {{ {code}\n return handler({json.dumps(event)}); }})()")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/console/", "/console/index.html"),
        ("/portal/", "/portal/index.html"),
        ("/console/app.js", "/console/app.js"),
        ("/shared/style.css", "/shared/style.css"),
    ],
)
def test_the_web_function_maps_folders_to_index_html(page, uri, expected):
    assert run(page, "WebPathFunction", uri)["uri"] == expected


@pytest.mark.parametrize(
    ("uri", "location"), [("/", "/console/"), ("/console", "/console/"), ("/portal", "/portal/")]
)
def test_the_web_function_redirects_the_root_and_bare_sites(page, uri, location):
    response = run(page, "WebPathFunction", uri)
    assert (response["statusCode"], response["headers"]["location"]["value"]) == (301, location)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/api/suppliers", "/suppliers"),
        ("/api/admin/corrections/drain", "/admin/corrections/drain"),
        ("/api", "/"),
        ("/api/", "/"),
        ("/apiary/x", "/apiary/x"),
    ],
)
def test_the_api_function_strips_the_prefix(page, uri, expected):
    assert run(page, "WebApiPathFunction", uri)["uri"] == expected
