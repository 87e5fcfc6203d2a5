"""Failures the domain and application layers raise, free of any HTTP or broker vocabulary.

The HTTP edge maps each to a problem-details response (`shared.web.problems`); the consumer edge
treats them like any other handler failure. Keeping them here lets `domain.py` modules raise
meaningful errors while importing nothing from the web framework.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the expected, client-caused failures."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The aggregate does not exist, or is not visible to the caller (no existence leak)."""


class Forbidden(DomainError):
    """The caller may not do this, whatever the resource's state: touch another user, or do what
    needs a role the caller lacks."""


class Conflict(DomainError):
    """The request contradicts the aggregate's current state (e.g. cancelling a rejected order)."""


class Invalid(DomainError):
    """The request is well-formed but not acceptable (e.g. an idempotency key reused)."""


class Unauthorized(DomainError):
    """Missing or bad credentials."""


class PreconditionRequired(DomainError):
    """A mutation came without the `If-Match` version it must be conditioned on."""


class StaleVersion(DomainError):
    """The expected version is not the current one: somebody else changed the aggregate first."""


class TooManyRequests(DomainError):
    """The caller went over a rate limit; it may try again after `retry_after` seconds."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
