"""Which keys a verifying service (order_svc here) checks tokens with, by configuration."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from order_svc.settings import OrderSettings
from shared.errors import Unauthorized
from shared.web.token_keys import verification_keys
from shared.web.tokens import EitherKeys, SigningKey, StaticKeys, verify_token

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
SECRET = "order-keys-test-secret-0123456789abcdef"
NOWHERE = "http://127.0.0.1:9/.well-known/jwks.json"


def settings(**values: object) -> OrderSettings:
    return OrderSettings(JWKS_URL=NOWHERE, JWT_SECRET=SECRET, **values)  # type: ignore[arg-type]


async def test_in_development_a_token_from_the_shared_secret_verifies_without_user_svc() -> None:
    token = SigningKey.from_secret(SECRET).issue(USER_ID, ttl_seconds=60)

    assert await verify_token(token, verification_keys(settings(APP_ENV="development"))) == USER_ID


async def test_in_production_the_shared_secret_is_not_a_verification_key() -> None:
    token = SigningKey.from_secret(SECRET).issue(USER_ID, ttl_seconds=60)

    with pytest.raises(Unauthorized, match="unknown key"):
        await verify_token(token, verification_keys(settings(APP_ENV="production")))


async def test_a_public_key_file_is_the_only_key_source_when_given(tmp_path: Path) -> None:
    published = SigningKey.from_secret("a-published-key-secret-0123456789abcdef")
    keys_file = tmp_path / "token-keys.pem"
    keys_file.write_bytes(published.public_pem)
    keys = verification_keys(settings(APP_ENV="development", JWT_PUBLIC_KEYS_FILE=keys_file))

    assert await verify_token(published.issue(USER_ID, ttl_seconds=60), keys) == USER_ID
    with pytest.raises(Unauthorized):
        await verify_token(SigningKey.from_secret(SECRET).issue(USER_ID, ttl_seconds=60), keys)


async def test_either_keys_asks_each_set_in_turn() -> None:
    first, second = (
        SigningKey.from_secret(f"either-keys-secret-number-{n}-0123456789") for n in (1, 2)
    )
    keys = EitherKeys(StaticKeys([first.public]), StaticKeys([second.public]))

    assert await keys.key(first.kid) is not None
    assert await keys.key(second.kid) is not None
    assert await keys.key("unknown") is None
