"""The change gate: how risky a change to an APPROVED supplier or an ACTIVE listing is.

The rules are data, one file per kind (``schemas/<kind>_changes.json``, validated by
``schemas/change_rules.json``): each editable field names a test, and the thresholds (the price move
in percent) are in the file. A tenant's rule pack may set other thresholds (its ``changes``,
:func:`tuned`; docs/decisions.md D51); which test a field has stays the file's. :func:`score` is pure: the record as it is, the fields a change would
set, the rules; it answers ``low`` (the change applies at once) or ``high`` (it becomes a proposal
that the kind's review runs on, :mod:`marketplace.proposals`), with the reasons (field and why).
A reason names what changes, never a value: it is shown to the caller and sent in events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from marketplace import normalize, schemas
from marketplace.errors import FieldError

LOW, HIGH = "low", "high"


@dataclass(frozen=True)
class Score:
    risk: str  # LOW | HIGH
    reasons: tuple[FieldError, ...] = ()

    @property
    def high(self) -> bool:
        return self.risk == HIGH


@cache
def rules_for(kind: str) -> dict[str, Any]:
    """The change rules of ``kind`` (``supplier``, ``listing``), checked against their schema: a
    malformed file stops the function at its first use, not at a change it would score wrongly."""
    document = json.loads((schemas.SCHEMA_DIR / f"{kind}_changes.json").read_text())
    errors = schemas.field_errors("change_rules", document)
    if errors or document["kind"] != kind:
        problems = [f"{e.field}: {e.reason}" for e in errors] or [f"kind is {document['kind']}, not {kind}"]
        raise ValueError(f"schemas/{kind}_changes.json: " + "; ".join(problems))
    return document


def thresholds(rule: Mapping[str, Any]) -> set[str]:
    """The thresholds a field's rule sets besides its test and reason (the price move's ``percent``):
    what a tenant's rule pack may tune for that field (``schemas/change_rules.json`` says which test
    takes which)."""
    return set(rule) - {"test", "reason"}


def tuned(rules: Mapping[str, Any], pack_thresholds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``rules`` with a rule pack's thresholds for their kind (``{field: {threshold: value}}``, as
    ``marketplace.rule_packs.check`` admits them): each one set replaces the file's, a field or a
    threshold left out keeps the file's."""
    fields = {name: {**rule, **pack_thresholds.get(name, {})} for name, rule in rules["fields"].items()}
    return {**rules, "fields": fields}


def score(rules: Mapping[str, Any], current: Mapping[str, Any], changes: Mapping[str, Any]) -> Score:
    """``high`` with a reason per risky field when any field of ``changes`` (the fields a change
    would set, with their new values) is high risk against ``current``; ``low`` otherwise."""
    reasons: list[FieldError] = []
    for name, new in sorted(changes.items()):
        old = current.get(name)
        if new == old:
            continue
        rule = rules["fields"].get(name)
        if rule is None:
            reasons.append(FieldError(name, "has no change rule: every change is reviewed"))
            continue
        why = _TESTS[rule["test"]](rule, old, new)
        if why is not None:
            reasons.append(FieldError(name, why or rule.get("reason", "is reviewed before it applies")))
    return Score(HIGH, tuple(reasons)) if reasons else Score(LOW)


# Each test: (rule, old value, new value) -> None when low risk, else the reason ("" for the rule's).
def _low(rule: Mapping[str, Any], old: Any, new: Any) -> str | None:
    return None


def _high(rule: Mapping[str, Any], old: Any, new: Any) -> str | None:
    return ""


def _same_domain(domain_of: Callable[[str], str]) -> Callable[[Mapping[str, Any], Any, Any], str | None]:
    """A test that is low risk while ``domain_of`` the value stays the same, readable domain (another
    mailbox or page of it), high risk otherwise."""

    def test(rule: Mapping[str, Any], old: Any, new: Any) -> str | None:
        same = isinstance(old, str) and isinstance(new, str) and domain_of(old) == domain_of(new)
        return None if same and domain_of(new) else ""

    return test


def _host(url: Any) -> str | None:
    try:
        return urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:  # "https://a]b/": no host anyone can read, so none the listing uses
        return None


def _image_hosts(rule: Mapping[str, Any], old: Any, new: Any) -> str | None:
    known = {_host(u) for u in old or []} - {None}
    return "" if any(_host(u) is None or _host(u) not in known for u in new or []) else None


def _price_move(rule: Mapping[str, Any], old: Any, new: Any) -> str | None:
    try:
        before, after = Decimal(str(old["amount"])), Decimal(str(new["amount"]))
        same_currency = old["currency"] == new["currency"]
    except (KeyError, TypeError, InvalidOperation):
        return ""
    if not same_currency:
        return "the currency changes"
    if before <= 0:
        return ""
    limit = Decimal(str(rule["percent"]))
    moved = abs(after - before) * 100 / before
    if moved > limit:
        return f"the price moves {moved.quantize(Decimal('0.1'))}%, beyond {limit}%"
    return None


_TESTS = {
    "low": _low,
    "high": _high,
    "emailDomain": _same_domain(normalize.email_domain),
    "urlDomain": _same_domain(normalize.website_domain),
    "imageHosts": _image_hosts,
    "priceMove": _price_move,
}
