"""Errors the domain raises. The API maps each to an HTTP status; the workflows match on the class
name (Lambda's ``errorType``) in ASL Retry and Catch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class MarketplaceError(Exception):
    """An error the API answers with ``status`` and ``code``; a subclass names both in its header:
    ``class NotFound(MarketplaceError, status=404, code="not_found")``."""

    status = 500
    code = "internal_error"

    def __init_subclass__(cls, status: int | None = None, code: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code


class InvalidInput(MarketplaceError, status=400, code="invalid_input"):
    """The request or record is malformed; ``fields`` says which field and why."""

    def __init__(self, fields: list[FieldError], message: str = "the request is invalid") -> None:
        super().__init__(message)
        self.fields = fields


class PayloadTooLarge(InvalidInput, status=413, code="payload_too_large"):
    """The body is larger than any valid request (a record must fit DynamoDB's 400 KB)."""


class Unauthorized(MarketplaceError, status=401, code="unauthorized"):
    """No token of ours, or claims no token of ours has."""


class Forbidden(MarketplaceError, status=403, code="forbidden"):
    """The caller's role may not do this, whatever the id."""


class NotFound(MarketplaceError, status=404, code="not_found"):
    """Unknown id, or another tenant's id: the two are indistinguishable on purpose."""


class Conflict(MarketplaceError, status=409, code="conflict"):
    """A conditional write lost: the record changed since it was read; or the record's state
    refuses the change, then ``fields`` may name the field and why (stock below zero)."""

    def __init__(self, message: str = "", fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.fields = fields


class PreconditionFailed(Conflict, status=412, code="precondition_failed"):
    """``If-Match`` named a version the record is no longer at (RFC 9110, 13.1.1)."""


class TransientError(MarketplaceError, status=503, code="unavailable"):
    """A dependency throttled or timed out; retrying may cure it (ASL Retry matches this name)."""


class Throttled(MarketplaceError, status=429, code="throttled"):
    """The caller's tenant used up its request limit for now (the fair share, D52); the API answers
    ``Retry-After: retry_after`` (whole seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownStep(Exception):
    """A state machine asked a steps function for a step it does not have: the ASL and the handler
    disagree (a bug, reported as the task's error, never a client's)."""
