"""order_svc's view of user_svc's keys: fetched over HTTP, cached, refetched on rotation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest

from shared.errors import Unauthorized
from shared.web.tokens import EitherKeys, RemoteKeys, SigningKey, StaticKeys, verify_token

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
OLD_KEY = SigningKey.from_secret("remote-keys-test-secret-number-one-0001")
NEW_KEY = SigningKey.from_secret("remote-keys-test-secret-number-two-0002")


class Issuer:
    """A stand-in for user_svc's JWKS endpoint whose keys and health the test controls."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [OLD_KEY]
        self.status = 200
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                body: Any = StaticKeys(k.public for k in issuer.keys).jwks()
                payload = json.dumps(body).encode()
                self.send_response(issuer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    thread = threading.Thread(target=issuer.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield issuer
    issuer.server.shutdown()
    issuer.server.server_close()


async def test_a_token_verifies_with_keys_fetched_from_the_issuer(issuer: Issuer) -> None:
    keys = RemoteKeys(issuer.url)
    await keys.load()

    assert await verify_token(OLD_KEY.issue(USER_ID, ttl_seconds=60), keys) == USER_ID


async def test_known_keys_are_served_from_the_cache(issuer: Issuer) -> None:
    keys = RemoteKeys(issuer.url)
    await keys.load()

    for _ in range(5):
        await verify_token(OLD_KEY.issue(USER_ID, ttl_seconds=60), keys)

    assert issuer.requests == 1


async def test_a_token_from_a_rotated_key_refetches_the_key_set(issuer: Issuer) -> None:
    keys = RemoteKeys(issuer.url, refresh_seconds=0)
    await keys.load()
    issuer.keys = [NEW_KEY, OLD_KEY]

    assert await verify_token(NEW_KEY.issue(USER_ID, ttl_seconds=60), keys) == USER_ID


async def test_unknown_keys_refetch_at_most_once_per_interval(issuer: Issuer) -> None:
    keys = RemoteKeys(issuer.url, refresh_seconds=3600)
    await keys.load()

    for _ in range(5):
        with pytest.raises(Unauthorized, match="unknown key"):
            await verify_token(NEW_KEY.issue(USER_ID, ttl_seconds=60), keys)

    assert issuer.requests == 1


async def test_an_issuer_that_was_down_at_start_is_asked_again_at_the_first_token(
    issuer: Issuer,
) -> None:
    keys = RemoteKeys(issuer.url, refresh_seconds=3600)
    issuer.status = 503
    await keys.load()
    issuer.status = 200

    assert await verify_token(OLD_KEY.issue(USER_ID, ttl_seconds=60), keys) == USER_ID


async def test_an_unreachable_issuer_makes_tokens_unauthorized_not_errors() -> None:
    keys = RemoteKeys("http://127.0.0.1:9/.well-known/jwks.json", timeout=1)

    with pytest.raises(Unauthorized, match="unknown key"):
        await verify_token(OLD_KEY.issue(USER_ID, ttl_seconds=60), keys)


async def test_keys_not_fetched_yet_are_not_ready(issuer: Issuer) -> None:
    issuer.status = 503
    keys = RemoteKeys(issuer.url)
    await keys.load()

    assert not await keys.ready()


async def test_asking_for_readiness_fetches_keys_that_are_missing(issuer: Issuer) -> None:
    """An API that started before the issuer becomes ready without waiting for a token."""
    issuer.status = 503
    keys = RemoteKeys(issuer.url, refresh_seconds=3600)
    await keys.load()
    issuer.status = 200

    assert await keys.ready()
    assert await verify_token(OLD_KEY.issue(USER_ID, ttl_seconds=60), keys) == USER_ID


async def test_keys_once_fetched_stay_ready_without_asking_the_issuer_again(
    issuer: Issuer,
) -> None:
    keys = RemoteKeys(issuer.url)
    await keys.load()
    issuer.status = 503

    assert await keys.ready()
    assert issuer.requests == 1


async def test_either_keys_are_ready_when_one_set_is(issuer: Issuer) -> None:
    issuer.status = 503
    keys = EitherKeys(RemoteKeys(issuer.url), StaticKeys([OLD_KEY.public]))

    assert await keys.ready()
