"""Amounts of money: exact decimals with their currency, rounded by one rule (docs/decisions.md D42).

* An amount is a :class:`decimal.Decimal` and an ISO 4217 currency, never a float. A price arrives as
  a JSON number with at most two decimals (the schemas say ``multipleOf: 0.01``) and is read through
  its shortest text (``Decimal(str(x))``), which is the decimal the caller wrote.
* **One rounding rule**: a computed amount (a commission: a rate times an amount) is rounded once,
  half to even, to the currency's minor unit (``ROUND_HALF_EVEN`` at 0.01 for EUR, 1 for JPY, 0.001
  for KWD). Sums and differences of rounded amounts are exact and never rounded again.
* Amounts the marketplace computes are stored and shown as strings at the currency's scale
  (``"12.30"``): DynamoDB's numbers come back as Decimal, but the repository turns them into JSON
  numbers (``marketplace.repository.plain``) for every reader, and a client parses a JSON number as
  binary floating point; a string carries the decimal unchanged through the table, the stream, the
  events and the API.

The minor units are ISO 4217's, written here: the only maintained libraries that carry them ship
the whole of CLDR (tens of megabytes in every function's layer) for a table of a dozen exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from marketplace.errors import Conflict, FieldError

ROUNDING = ROUND_HALF_EVEN
# ISO 4217 currencies whose minor unit is not the hundredth; every other one has two decimals.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                     "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip
CURRENCY_CODE = re.compile(r"[A-Z]{3}")


def minor_unit(currency: str) -> Decimal:
    """The currency's smallest amount: ``Decimal("0.01")`` for EUR, ``Decimal("1")`` for JPY."""
    return Decimal(1).scaleb(-_EXPONENTS.get(currency, 2))


def decimal_of(value: Any) -> Decimal:
    """An exact decimal from a JSON number, a stored number or a string (a float through its
    shortest text, which is the decimal it was parsed from); ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    try:
        found = Decimal(str(value)) if isinstance(value, float | int | str | Decimal) else None
    except InvalidOperation:
        found = None
    if found is None or not found.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return found


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        """An amount as given, exact; ValueError when it has more decimals than the currency has."""
        exact = decimal_of(amount)
        if exact != exact.quantize(minor_unit(currency), rounding=ROUNDING):
            raise ValueError(f"{amount} has more decimals than {currency} has")
        return cls(exact, currency)

    @classmethod
    def parse(cls, shown: Mapping[str, Any]) -> Money:
        """The amount of ``{"amount", "currency"}`` (a price, or an amount :meth:`view` showed)."""
        return cls.of(shown["amount"], str(shown["currency"]))

    @classmethod
    def rounded(cls, amount: Decimal, currency: str) -> Money:
        """``amount`` rounded by the one rule: half to even, to the currency's minor unit."""
        return cls(amount.quantize(minor_unit(currency), rounding=ROUNDING), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise Conflict(f"{self.currency} and {other.currency} amounts cannot be added")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def times(self, units: int) -> Money:
        """Exact: a unit price times a quantity needs no rounding."""
        return Money(self.amount * int(units), self.currency)

    def percent(self, rate: Decimal) -> Money:
        """``rate`` percent of this amount, rounded by the one rule."""
        return Money.rounded(self.amount * rate / 100, self.currency)

    def text(self) -> str:
        """The amount at the currency's scale, as stored and shown: ``"12.30"``, ``"-4.00"``."""
        return str(self.amount.quantize(minor_unit(self.currency), rounding=ROUNDING))

    def view(self) -> dict[str, str]:
        return {"amount": self.text(), "currency": self.currency}


def minimum_errors(minimums: Mapping[str, Any], field: str) -> list[FieldError]:
    """What the schema cannot say of a ``minimumPerLine`` map (the commission rules', a rule pack's
    commission defaults), as errors naming ``<field>.<code>``: a name that is no ISO 4217 code, an
    amount with more decimals than its currency has."""
    errors = []
    for code, amount in minimums.items():
        if not CURRENCY_CODE.fullmatch(code):
            errors.append(FieldError(f"{field}.{code}"[:200], "is not an ISO 4217 currency code"))
            continue
        try:
            Money.of(amount, code)
        except ValueError:
            errors.append(FieldError(f"{field}.{code}", f"has more decimals than {code} has"))
    return errors


def total(amounts: Iterable[Money], currency: str) -> Money:
    """The exact sum of ``amounts`` (all in ``currency``; none is zero in it)."""
    found = Money.zero(currency)
    for amount in amounts:
        found += amount
    return found


def refund(order: dict[str, Any], returned: list[dict[str, Any]]) -> dict[str, Any]:
    """What a received return refunds: each line's units at the order's unit price, and their sum,
    in exact decimals (never floats) and the order's currency."""
    prices = {line["sku"]: line["unitPrice"] for line in order["lines"]}
    currencies = {prices[item["sku"]]["currency"] for item in returned}
    if len(currencies) != 1:
        raise Conflict(f"the returned lines are priced in {', '.join(sorted(currencies))}: refund them apart")
    currency = currencies.pop()
    lines = [
        {"sku": item["sku"], "quantity": int(item["quantity"]),
         "amount": Money.parse(prices[item["sku"]]).times(int(item["quantity"])).amount}
        for item in returned
    ]  # fmt: skip
    return {
        "amount": total((Money(line["amount"], currency) for line in lines), currency).amount,
        "currency": currency,
        "lines": lines,
    }
