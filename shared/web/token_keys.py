"""Where a service that verifies tokens (and signs none) gets user_svc's public keys."""

from __future__ import annotations

from shared.settings import VerifierSettings
from shared.web.tokens import (
    EitherKeys,
    KeySet,
    RemoteKeys,
    SigningKey,
    StaticKeys,
    load_public_keys,
)


def verification_keys(settings: VerifierSettings) -> KeySet:
    """Public keys only: from a file when given, else fetched from user_svc's JWKS.

    In development, also the key user_svc derives from `JWT_SECRET` (the contract's one
    setting for tokens), so the services started side by side agree even when one cannot
    reach user_svc's JWKS. Never in production: there a verifying service holds no secret.
    """
    if settings.jwt_public_keys_file is not None:
        return StaticKeys(load_public_keys(settings.jwt_public_keys_file.read_bytes()))
    remote = RemoteKeys(settings.jwks_url)
    if settings.app_env == "development":
        derived = SigningKey.from_secret(settings.jwt_secret.get_secret_value()).public
        return EitherKeys(StaticKeys([derived]), remote)
    return remote
