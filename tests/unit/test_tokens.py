"""Access tokens: EdDSA signatures checked against public keys, with the algorithm pinned."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import Unauthorized
from shared.web.tokens import (
    ADMIN_ROLE,
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    Caller,
    SigningKey,
    StaticKeys,
    TokenVerifier,
    load_public_keys,
    public_jwk,
    verify_token,
)

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
KEY = SigningKey.from_secret("unit-test-secret-of-at-least-32-bytes-0001")
OTHER_KEY = SigningKey.from_secret("another-secret-of-at-least-32-bytes-00002")
KEYS = StaticKeys([KEY.public])


def valid_claims() -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "sub": str(USER_ID),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=1),
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims: dict[str, object], key: SigningKey = KEY) -> str:
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


async def test_a_token_verifies_to_the_user_it_was_issued_to() -> None:
    token = KEY.issue(USER_ID, ttl_seconds=60)

    assert await verify_token(token, KEYS) == USER_ID


async def test_a_token_names_its_key_and_the_pinned_algorithm() -> None:
    header = jwt.get_unverified_header(KEY.issue(USER_ID, ttl_seconds=60))

    assert (header["alg"], header["kid"]) == ("EdDSA", KEY.kid)


async def test_an_expired_token_is_unauthorized() -> None:
    token = KEY.issue(USER_ID, ttl_seconds=-1)

    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


async def test_a_token_signed_by_a_key_that_is_not_published_is_unauthorized() -> None:
    token = OTHER_KEY.issue(USER_ID, ttl_seconds=60)

    with pytest.raises(Unauthorized, match="unknown key"):
        await verify_token(token, KEYS)


async def test_a_token_signed_by_another_key_under_a_published_kid_is_unauthorized() -> None:
    token = jwt.encode(
        valid_claims(), OTHER_KEY.private, algorithm=ALGORITHM, headers={"kid": KEY.kid}
    )

    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


async def test_an_unsigned_token_with_alg_none_is_unauthorized() -> None:
    token = jwt.encode(valid_claims(), None, algorithm="none", headers={"kid": KEY.kid})

    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


async def test_an_hmac_token_keyed_with_the_public_key_is_unauthorized() -> None:
    """The classic algorithm confusion: whoever knows the public key signs with HS256."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KEY.kid}).encode())
    claims = valid_claims() | {"exp": int(time.time()) + 60, "iat": int(time.time())}
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(KEY.public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(signature)}"

    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


@pytest.mark.parametrize(
    ("claim", "value"), [("aud", "somebody-else"), ("iss", "order_svc"), ("sub", "not-a-uuid")]
)
async def test_a_token_with_a_foreign_claim_is_unauthorized(claim: str, value: str) -> None:
    with pytest.raises(Unauthorized):
        await verify_token(signed(valid_claims() | {claim: value}), KEYS)


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
async def test_a_token_without_a_required_claim_is_unauthorized(claim: str) -> None:
    claims = valid_claims()
    del claims[claim]

    with pytest.raises(Unauthorized):
        await verify_token(signed(claims), KEYS)


async def test_a_token_without_a_kid_is_unauthorized() -> None:
    token = jwt.encode(valid_claims(), KEY.private, algorithm=ALGORITHM)

    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


@pytest.mark.parametrize("token", ["not.a.token", "", "a.b", "....", "eyJhbGciOiJFZERTQSJ9.e30."])
async def test_a_malformed_token_is_unauthorized(token: str) -> None:
    with pytest.raises(Unauthorized):
        await verify_token(token, KEYS)


async def test_a_token_signed_by_a_retired_key_still_published_verifies() -> None:
    """Rotation: tokens signed before the switch stay valid while the old key is published."""
    token = OTHER_KEY.issue(USER_ID, ttl_seconds=60)

    assert await verify_token(token, StaticKeys([KEY.public, OTHER_KEY.public])) == USER_ID


def test_the_same_secret_gives_every_replica_the_same_key() -> None:
    again = SigningKey.from_secret("unit-test-secret-of-at-least-32-bytes-0001")

    assert again.kid == KEY.kid


def test_different_secrets_give_different_keys() -> None:
    assert OTHER_KEY.kid != KEY.kid


def test_the_kid_is_the_rfc_7638_thumbprint_of_the_public_key() -> None:
    """The example key of RFC 8037 appendix A.2 and its thumbprint from appendix A.3."""
    x = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

    jwk = public_jwk(Ed25519PublicKey.from_public_bytes(x))

    assert jwk["kid"] == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


def test_the_published_key_carries_no_private_part() -> None:
    assert set(public_jwk(KEY.public)) == {"kty", "crv", "x", "kid", "alg", "use"}


def test_a_signing_key_is_read_from_a_pkcs8_pem_file() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    key = SigningKey.from_pem(pem)

    assert key.public_pem == SigningKey(private).public_pem


def test_an_rsa_signing_key_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(pem)


def test_every_public_key_of_a_concatenated_pem_file_is_read() -> None:
    keys = load_public_keys(KEY.public_pem + OTHER_KEY.public_pem)

    assert [public_jwk(k)["kid"] for k in keys] == [KEY.kid, OTHER_KEY.kid]


def test_a_public_key_file_without_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="no PEM public key"):
        load_public_keys(b"")


class CountingKeys(StaticKeys):
    """A key set that counts how often a signature needed a key."""

    def __init__(self) -> None:
        super().__init__([KEY.public])
        self.lookups = 0

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        self.lookups += 1
        return await super().key(kid)


async def test_a_token_seen_before_is_not_verified_again() -> None:
    keys = CountingKeys()
    tokens = TokenVerifier(keys)
    token = KEY.issue(USER_ID, ttl_seconds=60)

    assert [await tokens.user_id(token) for _ in range(3)] == [USER_ID] * 3
    assert keys.lookups == 1


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    tokens = TokenVerifier(KEYS)
    token = KEY.issue(USER_ID, ttl_seconds=1)
    await tokens.user_id(token)

    await asyncio.sleep(1.1)  # the token's whole lifetime: what is being tested is its end

    with pytest.raises(Unauthorized):
        await tokens.user_id(token)


async def test_a_refused_token_is_refused_every_time() -> None:
    tokens = TokenVerifier(KEYS)
    token = OTHER_KEY.issue(USER_ID, ttl_seconds=60)

    for _ in range(2):
        with pytest.raises(Unauthorized):
            await tokens.user_id(token)


async def test_the_memory_of_verified_tokens_is_bounded() -> None:
    keys = CountingKeys()
    tokens = TokenVerifier(keys, capacity=2)
    first, second, third = (KEY.issue(USER_ID, ttl_seconds=60 + n) for n in range(3))
    for token in (first, second, third, first):
        await tokens.user_id(token)

    assert keys.lookups == 4


def test_a_token_issued_without_roles_has_no_roles_claim() -> None:
    claims = jwt.decode(KEY.issue(USER_ID, ttl_seconds=60), options={"verify_signature": False})

    assert "roles" not in claims


def test_a_token_issued_with_the_admin_role_carries_it_as_a_list() -> None:
    token = KEY.issue(USER_ID, ttl_seconds=60, roles=[ADMIN_ROLE])

    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["admin"]


async def test_a_verified_token_grants_the_roles_it_carries() -> None:
    tokens = TokenVerifier(KEYS)

    caller = await tokens.caller(KEY.issue(USER_ID, ttl_seconds=60, roles=[ADMIN_ROLE]))

    assert caller == Caller(USER_ID, frozenset({ADMIN_ROLE}))
    assert caller.is_admin


async def test_a_verified_token_without_roles_grants_none() -> None:
    caller = await TokenVerifier(KEYS).caller(KEY.issue(USER_ID, ttl_seconds=60))

    assert caller.roles == frozenset()
    assert not caller.is_admin


@pytest.mark.parametrize("roles", ["admin", [1], {"admin": True}, None])
async def test_a_token_whose_roles_are_not_a_list_of_strings_is_refused(roles: object) -> None:
    with pytest.raises(Unauthorized):
        await TokenVerifier(KEYS).caller(signed(valid_claims() | {"roles": roles}))
