"""Access tokens: signed by user_svc with a private key, verified everywhere with public keys only.

EdDSA (Ed25519) because it has no parameters to get wrong and small, fast signatures; the
algorithm is pinned on both sides, so a token with `alg: none` or an HMAC signature made with
the public key is refused. Every token names its key (`kid`, the key's RFC 7638 thumbprint), so
keys rotate without downtime: publish the next key in the JWKS, sign with it, and drop the old
one once the last token it signed has expired. `exp`, `iss` and `aud` are required. A token
may carry `roles` (`["admin"]` for an administrator); a token without the claim has no role.

Only user_svc holds a private key. order_svc verifies with the keys user_svc publishes at
`/.well-known/jwks.json` (or with public keys from a file), so a leak of order_svc's
configuration cannot mint tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.errors import Unauthorized

ALGORITHM = "EdDSA"
ISSUER = "user_svc"
AUDIENCE = "eventful"
ADMIN_ROLE = "admin"

log = logging.getLogger(__name__)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    x = _b64url(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    members = {"crv": "Ed25519", "kty": "OKP", "x": x}
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    return {**members, "kid": _b64url(thumbprint), "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the token signing key must be an Ed25519 private key (PEM, PKCS#8)")
        return cls(key)

    @classmethod
    def from_secret(cls, secret: str) -> SigningKey:
        """A key derived from a secret string, so that `JWT_SECRET` alone (the contract's setting)
        gives every replica the same key without a key file."""
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"eventful access tokens"
        ).derive(secret.encode())
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_pem(self) -> bytes:
        """The public half as a PEM file for verifiers (`JWT_PUBLIC_KEYS_FILE`)."""
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def kid(self) -> str:
        return public_jwk(self.public)["kid"]

    def issue(self, user_id: UUID, *, ttl_seconds: int, roles: Collection[str] = ()) -> str:
        """A token for `user_id`; the `roles` claim only when it has a role."""
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + timedelta(seconds=ttl_seconds),
        }
        if roles:
            claims["roles"] = sorted(roles)
        return jwt.encode(claims, self.private, algorithm=ALGORITHM, headers={"kid": self.kid})


def load_public_keys(pem: bytes) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a file of concatenated PEM blocks."""
    marker = b"-----BEGIN PUBLIC KEY-----"
    keys = []
    for block in pem.split(marker)[1:]:
        key = serialization.load_pem_public_key(marker + block)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("token verification keys must be Ed25519 public keys (PEM)")
        keys.append(key)
    if not keys:
        raise ValueError("no PEM public key found")
    return keys


class KeySet(Protocol):
    """Where verification keys come from."""

    async def load(self) -> None: ...

    async def key(self, kid: str) -> Ed25519PublicKey | None: ...

    async def ready(self) -> bool:
        """Whether there are keys to verify with; a set that has none yet tries to get them."""
        ...


class StaticKeys:
    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {public_jwk(k)["kid"]: k for k in keys}

    async def load(self) -> None:
        return None

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    async def ready(self) -> bool:
        return bool(self._keys)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set an issuer serves, for verifiers elsewhere."""
        return {"keys": [public_jwk(k) for k in self._keys.values()]}


class RemoteKeys:
    """The issuer's JWKS, fetched at start and cached.

    A token naming an unknown key triggers a refetch (that is how a rotation reaches us), at
    most once per `refresh_seconds` while the cache holds keys, so made-up `kid`s cost the issuer
    one request per interval. While no fetch has succeeded yet (the issuer started after us),
    every unknown key retries at once, one fetch at a time.
    """

    def __init__(self, url: str, *, refresh_seconds: float = 10.0, timeout: float = 5.0) -> None:
        self.url = url
        self._refresh_seconds = refresh_seconds
        self._timeout = timeout
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._fetched_at >= started:
                return
            try:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.get(self.url)
                    response.raise_for_status()
                    keys = jwt.PyJWKSet.from_dict(response.json()).keys
            except (httpx.HTTPError, jwt.PyJWTError, ValueError) as error:
                log.warning("could not fetch token keys from %s: %r", self.url, error)
                return
            self._keys = {
                k.key_id: k.key
                for k in keys
                if k.key_id is not None and isinstance(k.key, Ed25519PublicKey)
            }
            self._fetched_at = time.monotonic()
            log.info("token keys fetched from %s: %s", self.url, sorted(self._keys))

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        if kid not in self._keys and (
            not self._keys or time.monotonic() - self._fetched_at >= self._refresh_seconds
        ):
            await self.load()
        return self._keys.get(kid)

    async def ready(self) -> bool:
        # Asked by /readyz: an API that started before the issuer must not wait for a token
        # (which an unready replica never gets) to fetch its keys.
        if not self._keys:
            await self.load()
        return bool(self._keys)


class EitherKeys:
    """Several key sets, asked in order: the first that knows a `kid` answers."""

    def __init__(self, *sets: KeySet) -> None:
        self._sets = sets

    async def load(self) -> None:
        for keys in self._sets:
            await keys.load()

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        for keys in self._sets:
            key = await keys.key(kid)
            if key is not None:
                return key
        return None

    async def ready(self) -> bool:
        for keys in self._sets:
            if await keys.ready():
                return True
        return False


@dataclass(frozen=True)
class Caller:
    """Who a verified token names, and the roles it grants them."""

    user_id: UUID
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


class TokenVerifier:
    """`verify_token` with a memory of tokens already verified, until they expire.

    A client sends the same token with every request for its lifetime; checking its signature
    once is enough, since a verified token cannot change. The memory is bounded (oldest first
    out). The price: a key withdrawn from the key set stops working for new tokens at once, but
    tokens it signed that were already seen stay valid until they expire (at most
    `ACCESS_TOKEN_TTL_SECONDS`); restart the verifying service to cut that short.
    """

    def __init__(self, keys: KeySet, *, capacity: int = 10_000) -> None:
        self.keys = keys
        self._capacity = capacity
        self._verified: dict[str, tuple[Caller, float]] = {}

    async def caller(self, token: str) -> Caller:
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        self._verified.pop(token, None)
        caller, expires = await _verify(token, self.keys)
        if len(self._verified) >= self._capacity:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (caller, expires)
        return caller

    async def user_id(self, token: str) -> UUID:
        return (await self.caller(token)).user_id


async def verify_token(token: str, keys: KeySet) -> UUID:
    """The user id the token was issued to, or Unauthorized."""
    return (await _verify(token, keys))[0].user_id


async def _verify(token: str, keys: KeySet) -> tuple[Caller, float]:
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise Unauthorized("invalid or expired access token")
        key = await keys.key(kid)
        if key is None:
            raise Unauthorized("access token signed by an unknown key")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthorized("invalid or expired access token")
        return Caller(UUID(claims["sub"]), frozenset(roles)), float(claims["exp"])
    except (jwt.PyJWTError, ValueError) as error:
        raise Unauthorized("invalid or expired access token") from error
