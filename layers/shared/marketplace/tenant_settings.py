"""A tenant's settings, read from this one place.

Today every tenant has the defaults below; the tenants' own settings (a record per tenant that its
admin edits) will be read here too, so that no caller changes when they come.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OrderSettings:
    """How long a supplier order may take after acceptance."""

    ship_by_hours: int = 72  # the supplier ships within this many hours of accepting (``shipBy``)
    auto_cancel_unshipped_days: int = 7  # an accepted order still unshipped after this is cancelled
    auto_deliver_days: int = 14  # a shipped order not marked delivered is delivered after this
    return_window_days: int = 30  # returns are taken this long after delivery, then it closes
    restock_on_return: bool = False  # whether a received return puts its units back on sale

    def view(self) -> dict[str, int | bool]:
        return {
            "shipByHours": self.ship_by_hours,
            "autoCancelUnshippedDays": self.auto_cancel_unshipped_days,
            "autoDeliverDays": self.auto_deliver_days,
            "returnWindowDays": self.return_window_days,
            "restockOnReturn": self.restock_on_return,
        }


DEFAULT_ORDER_SETTINGS = OrderSettings()


def order_settings(tenant_id: str) -> OrderSettings:
    """The order settings of ``tenant_id`` (the defaults, until tenants can set their own)."""
    del tenant_id  # every tenant has the defaults today
    return DEFAULT_ORDER_SETTINGS
