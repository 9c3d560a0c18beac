"""Queue messages that the functions read: the one rule for a body no consumer can act on."""

from __future__ import annotations

import json
from collections.abc import Callable
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


# A dead-letter queue is read ten messages a receive; this many receives at most per removal.
DEAD_LETTER_RECEIVES = 20
# How long the messages read past stay hidden from other readers, at most (they are released at once).
_SCAN_VISIBILITY_SECONDS = 30


def remove_dead_letters(sqs: Any, queue_url: str, matches: Callable[[dict[str, Any]], bool]) -> int:
    """Delete from a dead-letter queue the messages ``matches`` picks (given each message with its
    attributes); the others are made visible again at once. SQS deletes a message only by the
    receipt handle of a receive, and no library finds one message in a queue, so this reads the
    queue: up to :data:`DEAD_LETTER_RECEIVES` receives of ten, keeping what it read past hidden
    until the end so that each receive brings new messages. Returns how many it deleted."""
    removed = 0
    passed: list[dict[str, Any]] = []
    try:
        for _ in range(DEAD_LETTER_RECEIVES):
            received = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=_SCAN_VISIBILITY_SECONDS,
                MessageAttributeNames=["All"], WaitTimeSeconds=0,
            ).get("Messages", [])  # fmt: skip
            if not received:
                break
            picked = [message for message in received if matches(message)]
            passed += [message for message in received if not matches(message)]
            if picked:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(picked)]
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
                removed += len(picked)
    finally:
        for start in range(0, len(passed), 10):
            batch = passed[start : start + 10]
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                         for i, m in enumerate(batch)],
            )  # fmt: skip
    return removed
