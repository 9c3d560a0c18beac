"""Queue messages that the functions read: the one rule for a body no consumer can act on."""

from __future__ import annotations

import json
from typing import Any


class PoisonMessage(Exception):
    """A queue message that no consumer can ever act on: it goes to the dead-letter queue."""


def json_object(body: str) -> dict[str, Any]:
    """A message body as the JSON object it must be; PoisonMessage saying why otherwise."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    if isinstance(data, dict):
        return data
    raise PoisonMessage("not a JSON object")
