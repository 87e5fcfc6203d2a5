"""Password hashing (argon2 via pwdlib) and verification that does not reveal unknown emails.

`verify` against a missing account still runs one full argon2 verification (against a hash
made at start-up), so a login for an unknown email costs the same time as a wrong password.
"""

from __future__ import annotations

import secrets

from pwdlib import PasswordHash


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHash.recommended()
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        if password_hash is None:
            self._hasher.verify(password, self._decoy)
            return False
        return self._hasher.verify(password, password_hash)
