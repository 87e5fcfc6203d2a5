"""Password hashing (argon2id via pwdlib) and verification that does not reveal unknown emails.

`verify` against a missing account still runs one full argon2 verification (against a hash
made at start-up), so a login for an unknown email costs the same time as a wrong password.

Parameters: OWASP's first recommended argon2id configuration (19 MiB, 2 iterations, 1 lane)
rather than pwdlib's default of 64 MiB and 4 lanes, whose cost is equivalent for an attacker
with a GPU but which made every concurrent login hold 64 MiB. Hashes run on a pool of their own
`CONCURRENT_HASHES` threads: a burst of logins queues instead of multiplying memory and
starving the event loop's CPU. A pool of their own, not the event loop's default executor:
glibc keeps a freed 19 MiB block in the heap of the thread that used it, so every thread that
ever hashed holds one for good. On the default executor's six threads that was up to six blocks
(136 MB resident after a burst of logins against 60 MB on two threads; the service's resident
memory is a target in `make bench`). Hashes made with other parameters still verify (each
hash names its own).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
CONCURRENT_HASHES = 2

T = TypeVar("T")


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(time_cost=ITERATIONS, memory_cost=MEMORY_KIB, parallelism=1),)
        )
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
        self._threads = ThreadPoolExecutor(CONCURRENT_HASHES, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        if password_hash is None:
            await self._run(self._hasher.verify, password, self._decoy)
            return False
        return await self._run(self._hasher.verify, password, password_hash)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
