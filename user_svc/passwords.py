"""Password hashing (argon2id via pwdlib) and verification that does not reveal unknown emails.

`verify` against a missing account still runs one full argon2 verification (against a hash
made at start-up), so a login for an unknown email costs the same time as a wrong password.

Parameters: OWASP's first recommended argon2id configuration (19 MiB, 2 iterations, 1 lane)
rather than pwdlib's default of 64 MiB and 4 lanes, whose cost is equivalent for an attacker
with a GPU but which made every concurrent login hold 64 MiB. Hashes run in worker threads, at
most `CONCURRENT_HASHES` at once: a burst of logins queues instead of multiplying memory and
starving the event loop's CPU. Hashes made with other parameters still verify (each hash
names its own).
"""

from __future__ import annotations

import asyncio
import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
CONCURRENT_HASHES = 2


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(time_cost=ITERATIONS, memory_cost=MEMORY_KIB, parallelism=1),)
        )
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
        self._slots = asyncio.Semaphore(CONCURRENT_HASHES)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        async with self._slots:
            if password_hash is None:
                await asyncio.to_thread(self._hasher.verify, password, self._decoy)
                return False
            return await asyncio.to_thread(self._hasher.verify, password, password_hash)
