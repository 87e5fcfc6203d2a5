"""The pure helpers at the HTTP edge: If-Match versions and list cursors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from uuid import UUID

import pytest

from inventory_svc import api as inventory_api
from order_svc.api import CURSOR_PATTERN, _decode_cursor, _encode_cursor
from shared.errors import Invalid, PreconditionRequired
from shared.web.etags import IF_MATCH_PATTERN, etag, expected_version

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
def test_an_if_match_that_is_not_an_etag_of_this_api_is_invalid_input(if_match: str) -> None:
    with pytest.raises(Invalid, match="If-Match"):
        expected_version(if_match)


@pytest.mark.parametrize("if_match", ['"3"', 'W/"3"', '"0"', '"999999999"', '"abc"', "*", "3"])
def test_the_documented_if_match_pattern_admits_what_is_parsed(if_match: str) -> None:
    try:
        expected_version(if_match)
    except Invalid:
        parsed = False
    else:
        parsed = True

    assert parsed == bool(re.fullmatch(IF_MATCH_PATTERN, if_match))


def test_a_cursor_decodes_to_the_position_it_was_encoded_from() -> None:
    created_at = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

    assert _decode_cursor(_encode_cursor(created_at, ORDER_ID)) == (created_at, ORDER_ID)


def test_no_cursor_means_the_first_page() -> None:
    assert _decode_cursor(None) is None


def test_every_string_of_the_cursor_pattern_is_a_position() -> None:
    assert _decode_cursor("0." + "0" * 32) == (
        datetime(1970, 1, 1, tzinfo=UTC),
        UUID(int=0),
    )
    assert _decode_cursor("9" * 16 + "." + "f" * 32) is not None


def test_a_cursor_matches_the_documented_pattern() -> None:
    cursor = _encode_cursor(datetime(2024, 5, 1, tzinfo=UTC), ORDER_ID)

    assert re.fullmatch(CURSOR_PATTERN, cursor)


@pytest.mark.parametrize("sku", ["BOOK-1", " ", "a/b?c=d&e", "~" * 64])
def test_a_stock_cursor_decodes_to_the_sku_it_was_encoded_from(sku: str) -> None:
    cursor = inventory_api._encode_cursor(sku)

    assert re.fullmatch(inventory_api.CURSOR_PATTERN, cursor)
    assert inventory_api._decode_cursor(cursor) == sku


@pytest.mark.parametrize("cursor", ["20", "7e" * 64, "2f5b"])
def test_every_string_of_the_stock_cursor_pattern_is_a_sku(cursor: str) -> None:
    sku = inventory_api._decode_cursor(cursor)

    assert sku is not None
    assert re.fullmatch(inventory_api.SKU_PATTERN, sku)


@pytest.mark.parametrize("cursor", ["", "AA", "7f", "1f", "2", "20" * 65, "QUJD"])
def test_a_stock_cursor_that_names_no_sku_is_outside_the_pattern(cursor: str) -> None:
    assert re.fullmatch(inventory_api.CURSOR_PATTERN, cursor) is None
