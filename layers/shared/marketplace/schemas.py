"""JSON Schemas (draft 2020-12) from the top-level ``schemas/`` folder, shipped in the layer."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from marketplace.errors import FieldError, InvalidInput, PayloadTooLarge

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# The largest valid body is far below this (a listing with 20 images and 50 attributes is ~70 KB); a
# larger one could only make a record over DynamoDB's 400 KB item limit.
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 16  # the deepest valid body (an order's line's price) is 4 levels
MAX_REASON = 200  # characters of a reason: an error never echoes a huge value back


def parse_body(raw: str | bytes | None) -> Any:
    """A request body as JSON, or InvalidInput naming ``(body)`` and why: empty, too large, not
    UTF-8, not JSON, NaN or Infinity (JSON has neither, DynamoDB stores neither), a lone surrogate
    (not storable as UTF-8), or nested deeper than any request."""
    if raw is None or raw == "" or raw == b"":
        raise InvalidInput([FieldError("(body)", "a JSON body is required")])
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            [FieldError("(body)", f"is {size} bytes; a request may be at most {MAX_BODY_BYTES}")],
            "the request body is too large",
        )
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput([FieldError("(body)", f"is not UTF-8 at byte {exc.start}")]) from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        document = json.loads(raw, parse_constant=no_constant)
    except RecursionError:
        raise InvalidInput([FieldError("(body)", f"is nested deeper than {MAX_DEPTH} levels")]) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            [FieldError("(body)", f"is not valid JSON: {exc.msg} at position {exc.pos}")]
        ) from None
    except ValueError as exc:
        raise InvalidInput([FieldError("(body)", f"is not valid JSON: {exc}")]) from None
    problem = _unstorable(document, "", 1)
    if problem:
        raise InvalidInput([FieldError(problem[0] or "(body)", problem[1])])
    return document


def _unstorable(node: Any, path: str, depth: int) -> tuple[str, str] | None:
    """(field, reason) of the first value DynamoDB could not store, if any."""
    if depth > MAX_DEPTH:
        return "(body)", f"is nested deeper than {MAX_DEPTH} levels"
    if isinstance(node, str):
        return (
            None
            if _utf8(node)
            else (path, "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
        )
    if isinstance(node, float | int) and not isinstance(node, bool) and not _storable_number(node):
        return path, "is a number DynamoDB cannot store (38 digits, magnitude 1e-130 to 1e126)"
    children: Any = (
        node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    )
    for key, value in children:
        if isinstance(key, str) and not _utf8(key):
            return path or "(body)", "holds a field name with a lone UTF-16 surrogate"
        problem = _unstorable(value, _clip(f"{path}.{key}" if path else str(key)), depth + 1)
        if problem:
            return problem
    return None


def _storable_number(number: float | int) -> bool:
    if isinstance(number, int):
        return abs(number) < 10**38
    if number != number or number in (float("inf"), float("-inf")):
        return False
    return number == 0 or 1e-130 <= abs(number) < 1e126


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    """``pattern`` as ECMA-262 (the OpenAPI document's regex dialect) reads it: there ``$`` is the
    end of the string, where Python's also matches before a final newline (``"DE\\n"`` would pass
    ``^[A-Z]{2}$``). Our patterns use ``$`` only as their last character, so that one becomes ``\\Z``;
    they spell white space out instead of ``\\s``, whose members differ between the dialects."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _multiple_of(validator: Any, step: float, instance: Any, schema: Any) -> Any:
    """Exactly, in decimal as the number was written: jsonschema divides binary floats, so 0.07 is
    not a multiple of 0.01 there (0.07 / 0.01 = 7.000000000000001) though it is one in the document
    (a Fraction, not a Decimal, so that 1e200 % 0.000001 is no "division impossible")."""
    if validator.is_type(instance, "number") and Fraction(str(instance)) % Fraction(str(step)) != 0:
        yield ValidationError(f"{instance!r} is not a multiple of {step}")


# JSON Schema 2020-12 with the two keywords read as the OpenAPI document means them.
Validator = validators.extend(Draft202012Validator, {"pattern": _pattern, "multipleOf": _multiple_of})


def _document(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


@cache
def validator(name: str) -> Any:
    schema = _document(name)
    Draft202012Validator.check_schema(schema)
    return Validator(schema, format_checker=FormatChecker())


@cache
def parameter(name: str) -> dict[str, Any]:
    """The schema of a query, path or header parameter (``schemas/parameters.json``'s ``$defs``)."""
    return _document("parameters")["$defs"][name]


def check_parameter(name: str, field: str, value: Any, reason: str) -> None:
    """InvalidInput naming ``field`` with ``reason`` unless ``value`` matches parameter ``name``."""
    if not Validator(parameter(name)).is_valid(value):
        raise InvalidInput([FieldError(field, reason)])


def field_errors(name: str, document: Any) -> list[FieldError]:
    """Every violation as (field path, reason), sorted by field; empty when valid."""
    errors = []
    for error in validator(name).iter_errors(document):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = f"{path}.{missing}" if path else missing
            reason = "is required"
        elif error.validator == "additionalProperties":
            extras = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for extra in extras:
                errors.append(FieldError(_clip(f"{path}.{extra}" if path else extra), "is not allowed"))
            continue
        elif error.validator == "not" and "enum" in error.validator_value:
            reason = f"may not be {' or '.join(json.dumps(v) for v in error.validator_value['enum'])}"
        else:
            reason = _clip(error.message)
        errors.append(FieldError(_clip(path) or "(body)", reason))
    return sorted(set(errors), key=lambda e: (e.field, e.reason))


def validate(name: str, document: Any) -> None:
    errors = field_errors(name, document)
    if errors:
        raise InvalidInput(errors)
