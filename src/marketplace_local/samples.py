"""Valid sample bodies for the API, shared by the fault run, the benchmarks and the tests that drive
the local stack over HTTP. Callers override what must be unique (a tax id, a SKU, a quantity)."""

from __future__ import annotations

from typing import Any

SUPPLIER: dict[str, Any] = {
    "legalName": "Globex GmbH", "taxId": "DE123456789", "country": "DE", "contactEmail": "einkauf@globex.de",
    "website": "https://globex.de", "phone": "+49 30 1234567",
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}  # fmt: skip

SHIP_TO: dict[str, Any] = {
    "name": "Ada", "line1": "1 Analytical St", "city": "London", "postalCode": "N1 9GU", "country": "GB",
}  # fmt: skip


def listing(quantity: int = 1000, **overrides: Any) -> dict[str, Any]:
    """A listing that the listing workflow makes ACTIVE."""
    return {
        "sku": "LAMP-1", "title": "Desk lamp", "category": "home", "price": {"amount": 49.9, "currency": "EUR"},
        "quantity": quantity, "images": ["https://cdn.example.com/lamp.webp"], "attributes": {"material": "steel"},
        **overrides,
    }  # fmt: skip
