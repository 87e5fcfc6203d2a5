"""Password hashes: argon2id with OWASP's parameters; older hashes keep verifying."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pwdlib import PasswordHash

from user_svc.passwords import CONCURRENT_HASHES, Passwords


async def test_a_password_is_hashed_with_argon2id_at_19_mib_2_iterations_1_lane() -> None:
    hashed = await Passwords().hash("correct horse")

    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_the_right_password_verifies_and_a_wrong_one_does_not() -> None:
    passwords = Passwords()
    hashed = await passwords.hash("correct horse")

    assert await passwords.verify("correct horse", hashed)
    assert not await passwords.verify("wrong horse", hashed)


async def test_a_hash_made_with_other_argon2_parameters_still_verifies() -> None:
    older = PasswordHash.recommended().hash("correct horse")

    assert await Passwords().verify("correct horse", older)


async def test_an_unknown_account_never_verifies() -> None:
    assert not await Passwords().verify("correct horse", None)


async def test_a_burst_of_logins_hashes_on_two_threads_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = Passwords()
    hashed = await passwords.hash("correct horse")
    threads: set[str] = set()
    verify = PasswordHash.verify

    def recording(self: PasswordHash, password: str, password_hash: str) -> bool:
        threads.add(threading.current_thread().name)
        return verify(self, password, password_hash)

    monkeypatch.setattr(PasswordHash, "verify", recording)
    await asyncio.gather(
        *(passwords.verify("correct horse", hashed) for _ in range(12)),
        *(asyncio.to_thread(time.sleep, 0.01) for _ in range(12)),
    )

    assert len(threads) <= CONCURRENT_HASHES
    assert all(name.startswith("argon2") for name in threads)
