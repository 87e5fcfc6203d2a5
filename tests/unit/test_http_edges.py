"""The pure helpers at the HTTP edge: If-Match versions and list cursors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

import pytest

from order_svc.api import _decode_cursor, _encode_cursor
from shared.errors import Invalid, PreconditionRequired, StaleVersion
from shared.web.etags import etag, expected_version

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")


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
