"""Every kind of record that a workflow reviews or the correction queue holds, by name.

Adding a kind is adding its entry here (and its ``Kind`` beside its rules): the stream router, the
drain and the correction API find it by the name a record's ``entity`` or a message's ``kind``
carries, and never switch over the kinds themselves.
"""

from __future__ import annotations

from marketplace import orders, products, suppliers
from marketplace.reviewed import Kind

KINDS: dict[str, Kind] = {k.name: k for k in (suppliers.KIND, products.KIND, orders.KIND)}


def find(name: object) -> Kind | None:
    return KINDS.get(name) if isinstance(name, str) else None
