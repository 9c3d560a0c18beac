"""``marketplace.schemas`` reads a schema as the OpenAPI document means it (D29): a pattern's ``$``
is the end of the string, ``multipleOf`` is exact in decimal, and a parameter is checked against
its one definition in ``schemas/parameters.json``."""

from __future__ import annotations

import pytest

from marketplace import schemas
from marketplace.errors import InvalidInput
from marketplace_local.samples import SUPPLIER, listing


def test_a_pattern_does_not_match_before_a_final_newline():
    assert schemas.field_errors("supplier", SUPPLIER) == []
    errors = schemas.field_errors("supplier", {**SUPPLIER, "country": "DE\n"})
    assert [e.field for e in errors] == ["country"]


@pytest.mark.parametrize("amount", [0.57, 0.07, 19.99, 1000000, 0.01])
def test_a_price_with_at_most_2_decimals_is_a_multiple_of_a_cent(amount):
    assert (
        schemas.field_errors("product", {**listing(), "price": {"amount": amount, "currency": "EUR"}}) == []
    )


@pytest.mark.parametrize("amount", [0.575, 1e-300, 19.999])
def test_a_price_with_more_decimals_is_refused_naming_the_amount(amount):
    errors = schemas.field_errors("product", {**listing(), "price": {"amount": amount, "currency": "EUR"}})
    assert [e.field for e in errors] == ["price.amount"]


@pytest.mark.parametrize("value", [1e-300, 1e200, 0.0000001])
def test_an_attribute_number_dynamodb_cannot_store_is_refused(value):
    errors = schemas.field_errors("product", {**listing(), "attributes": {"weight": value}})
    assert [e.field for e in errors] == ["attributes.weight"]


@pytest.mark.parametrize("text", ["\u0085\u0085", "a\x1cb", "\u3000 "])
def test_white_space_is_the_same_set_in_every_dialect(text):
    """``\\s`` differs between Python, ECMA-262 and Rust; the patterns spell Python's set out."""
    errors = schemas.field_errors("product", {**listing(), "title": text})
    assert [e.field for e in errors] == ["title"]


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("limit", [1, 50, 100], [0, 101, "5", 1.5]),
        ("pageToken", ["", "eyJQSyI6", "SUPPLIER.eyJQSyI6", "SUPPLIER."], ["a b", "x%", "a.b.c", "é"]),
        ("ifMatch", ["3", '"3"'], ["", 'W/"3"', '"3', "3\n", "\u00b2", "1" * 19]),
        ("idempotencyKey", ["k", "order 1", "!" * 128], ["", " k", "k ", "\u00e9", "!" * 129]),
    ],
)
def test_a_parameter_is_checked_against_its_one_definition(name, good, bad):
    for value in good:
        schemas.check_parameter(name, name, value, "bad")
    for value in bad:
        with pytest.raises(InvalidInput):
            schemas.check_parameter(name, name, value, "bad")
