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
    status = 500
    code = "internal_error"


class InvalidInput(MarketplaceError):
    """The request or record is malformed; ``fields`` says which field and why."""

    status = 400
    code = "invalid_input"

    def __init__(self, fields: list[FieldError], message: str = "the request is invalid") -> None:
        super().__init__(message)
        self.fields = fields


class PayloadTooLarge(InvalidInput):
    """The body is larger than any valid request (a record must fit DynamoDB's 400 KB)."""

    status = 413
    code = "payload_too_large"


class Unauthorized(MarketplaceError):
    status = 401
    code = "unauthorized"


class Forbidden(MarketplaceError):
    status = 403
    code = "forbidden"


class NotFound(MarketplaceError):
    """Unknown id, or another tenant's id: the two are indistinguishable on purpose."""

    status = 404
    code = "not_found"


class Conflict(MarketplaceError):
    """A conditional write lost: the record changed since it was read."""

    status = 409
    code = "conflict"


class TransientError(MarketplaceError):
    """A dependency throttled or timed out; retrying may cure it (ASL Retry matches this name)."""

    status = 503
    code = "unavailable"
