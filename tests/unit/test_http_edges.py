"""The pure helpers at the HTTP edge: If-Match versions, list cursors, access tokens."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt
import pytest

from order_svc.api import _decode_cursor, _encode_cursor
from shared.auth import ALGORITHM, AUDIENCE, ISSUER, issue_token, verify_token
from shared.errors import Invalid, PreconditionRequired, StaleVersion, Unauthorized
from shared.http import etag, expected_version

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")
SECRET = "unit-test-secret-of-at-least-32-bytes-0001"
OTHER_SECRET = "another-secret-of-at-least-32-bytes-00002"


@pytest.mark.parametrize("if_match", [None, "", "   "])
def test_a_missing_or_blank_if_match_is_a_precondition_required(if_match: str | None) -> None:
    with pytest.raises(PreconditionRequired):
        expected_version(if_match)


def test_a_strong_etag_in_if_match_is_the_expected_version() -> None:
    assert expected_version('"3"') == 3


def test_a_weak_etag_in_if_match_is_the_expected_version() -> None:
    assert expected_version('W/"3"') == 3


def test_the_etag_of_a_version_is_what_if_match_accepts_back() -> None:
    assert expected_version(etag(42)) == 42


@pytest.mark.parametrize("if_match", ['"abc"', '"-1"', '"3.0"', "*", '"3", "4"', '"²"', '"٣"', "3"])
def test_an_if_match_that_names_no_version_is_stale(if_match: str) -> None:
    with pytest.raises(StaleVersion):
        expected_version(if_match)


def test_a_cursor_decodes_to_the_position_it_was_encoded_from() -> None:
    created_at = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

    assert _decode_cursor(_encode_cursor(created_at, ORDER_ID)) == (created_at, ORDER_ID)


def test_no_cursor_means_the_first_page() -> None:
    assert _decode_cursor(None) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        base64.urlsafe_b64encode(b"2024-05-01T12:00:00+00:00").decode(),
        base64.urlsafe_b64encode(b"yesterday|00000000-0000-4000-8000-0000000000b1").decode(),
        base64.urlsafe_b64encode(b"2024-05-01T12:00:00+00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(b"2024-05-01T12:00:00+00:00|a|b").decode(),
    ],
)
def test_a_cursor_this_api_did_not_issue_is_invalid(cursor: str) -> None:
    with pytest.raises(Invalid, match="cursor"):
        _decode_cursor(cursor)


def test_a_token_verifies_to_the_user_it_was_issued_to() -> None:
    token = issue_token(USER_ID, secret=SECRET, ttl_seconds=60)

    assert verify_token(token, secret=SECRET) == USER_ID


def test_an_expired_token_is_unauthorized() -> None:
    token = issue_token(USER_ID, secret=SECRET, ttl_seconds=-1)

    with pytest.raises(Unauthorized):
        verify_token(token, secret=SECRET)


def test_a_token_signed_with_another_secret_is_unauthorized() -> None:
    token = issue_token(USER_ID, secret=OTHER_SECRET, ttl_seconds=60)

    with pytest.raises(Unauthorized):
        verify_token(token, secret=SECRET)


def test_an_unsigned_token_with_alg_none_is_unauthorized() -> None:
    token = jwt.encode(valid_claims(), None, algorithm="none")

    with pytest.raises(Unauthorized):
        verify_token(token, secret=SECRET)


@pytest.mark.parametrize(
    ("claim", "value"), [("aud", "somebody-else"), ("iss", "order_svc"), ("sub", "not-a-uuid")]
)
def test_a_token_with_a_foreign_claim_is_unauthorized(claim: str, value: str) -> None:
    token = jwt.encode(valid_claims() | {claim: value}, SECRET, algorithm=ALGORITHM)

    with pytest.raises(Unauthorized):
        verify_token(token, secret=SECRET)


def test_a_token_without_an_expiry_is_unauthorized() -> None:
    claims = valid_claims()
    del claims["exp"]
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)

    with pytest.raises(Unauthorized):
        verify_token(token, secret=SECRET)


def test_a_malformed_token_is_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        verify_token("not.a.token", secret=SECRET)


def valid_claims() -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "sub": str(USER_ID),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=1),
    }
