"""Service settings: the defaults and environment names of CONTRACT.md, and production safety."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from order_svc.settings import OrderSettings
from user_svc.settings import DEVELOPMENT_JWT_SECRET, UserSettings

CONTRACT_ENV = (
    "USER_SVC_PORT",
    "ORDER_SVC_PORT",
    "USER_SVC_DATABASE_URL",
    "ORDER_SVC_DATABASE_URL",
    "AMQP_URL",
    "JWT_SECRET",
    "JWT_PRIVATE_KEY_FILE",
    "JWKS_URL",
    "USER_DEFAULT_CREDIT_LIMIT",
    "APP_ENV",
    "LOGIN_RATE_LIMIT",
    "RATE_LIMIT_READS",
    "RATE_LIMIT_WRITES",
    "RATE_LIMITS",
    "RATE_LIMIT_STORAGE_URL",
    "ADMIN_EMAILS",
)
PRODUCTION_SECRET = "a-production-secret-of-at-least-32-bytes"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the shell running the tests exports, each test starts from the defaults."""
    for name in CONTRACT_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_user_svc_listens_on_8001_by_default() -> None:
    settings = UserSettings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8001)


def test_order_svc_listens_on_8002_by_default() -> None:
    settings = OrderSettings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8002)


def test_user_svc_uses_its_own_database_by_default() -> None:
    assert UserSettings().database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/user_svc"


def test_order_svc_uses_its_own_database_by_default() -> None:
    assert OrderSettings().database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/order_svc"


def test_both_services_use_the_local_broker_by_default() -> None:
    assert UserSettings().amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert OrderSettings().amqp_url == "amqp://guest:guest@127.0.0.1:5672/"


def test_a_new_user_gets_a_credit_limit_of_100000_by_default() -> None:
    assert UserSettings().default_credit_limit == 100_000


def test_development_uses_the_development_secret_when_none_is_set() -> None:
    settings = UserSettings()

    assert settings.app_env == "development"
    assert settings.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET


def test_user_svc_port_is_read_from_user_svc_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SVC_PORT", "9101")

    assert UserSettings().port == 9101


def test_order_svc_port_is_read_from_order_svc_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_SVC_PORT", "9102")

    assert OrderSettings().port == 9102


def test_a_services_port_is_not_read_from_the_other_services_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDER_SVC_PORT", "9102")

    assert UserSettings().port == 8001


def test_user_svc_database_is_read_from_user_svc_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SVC_DATABASE_URL", "postgresql+asyncpg://u@db:5432/users")

    assert UserSettings().database_url == "postgresql+asyncpg://u@db:5432/users"


def test_order_svc_database_is_read_from_order_svc_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDER_SVC_DATABASE_URL", "postgresql+asyncpg://u@db:5432/orders")

    assert OrderSettings().database_url == "postgresql+asyncpg://u@db:5432/orders"


def test_the_broker_is_read_from_amqp_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://app:pw@rabbit:5672/prod")

    assert UserSettings().amqp_url == "amqp://app:pw@rabbit:5672/prod"
    assert OrderSettings().amqp_url == "amqp://app:pw@rabbit:5672/prod"


def test_the_signing_secret_is_read_from_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", PRODUCTION_SECRET)

    assert UserSettings().jwt_secret.get_secret_value() == PRODUCTION_SECRET


def test_order_svc_fetches_keys_from_user_svc_on_its_default_port() -> None:
    assert OrderSettings().jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"


def test_order_svc_fetches_keys_from_the_port_user_svc_is_told_to_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SVC_PORT", "9101")

    assert OrderSettings().jwks_url == "http://127.0.0.1:9101/.well-known/jwks.json"


def test_order_svc_fetches_keys_from_jwks_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_URL", "http://user_svc:8001/.well-known/jwks.json")

    assert OrderSettings().jwks_url == "http://user_svc:8001/.well-known/jwks.json"


def test_order_svc_needs_no_signing_secret_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")

    assert OrderSettings().app_env == "production"


def test_the_default_credit_limit_is_read_from_user_default_credit_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_DEFAULT_CREDIT_LIMIT", "2500")

    assert UserSettings().default_credit_limit == 2_500


def test_production_without_jwt_secret_refuses_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")

    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        UserSettings()


def test_production_with_the_development_secret_refuses_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", DEVELOPMENT_JWT_SECRET)

    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        UserSettings()


def test_production_with_a_jwt_secret_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", PRODUCTION_SECRET)

    assert UserSettings().app_env == "production"


def test_production_with_a_private_key_file_builds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(tmp_path / "token-key.pem"))

    assert UserSettings().jwt_private_key_file == tmp_path / "token-key.pem"


def test_login_rate_limit_is_read_from_login_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_RATE_LIMIT", "5/second")

    assert UserSettings().login_rate_limit == "5/second"


def test_a_malformed_rate_limit_refuses_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_RATE_LIMIT", "lots")

    with pytest.raises(ValidationError, match="LOGIN_RATE_LIMIT"):
        UserSettings()


@pytest.mark.parametrize("settings", [UserSettings, OrderSettings])
def test_every_service_limits_reads_and_writes_generously_in_process_memory_by_default(
    settings: type[UserSettings | OrderSettings],
) -> None:
    defaults = settings()

    assert (defaults.rate_limit_reads, defaults.rate_limit_writes) == ("500/second", "200/second")
    assert (defaults.rate_limits, defaults.rate_limit_storage_url) == ("", None)


@pytest.mark.parametrize("name", ["RATE_LIMIT_READS", "RATE_LIMIT_WRITES", "RATE_LIMITS"])
def test_a_malformed_api_rate_limit_refuses_to_build(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "lots")

    with pytest.raises(ValidationError, match=name):
        OrderSettings()


def test_rate_limits_are_counted_in_the_redis_of_rate_limit_storage_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "redis://redis:6379/2")

    assert OrderSettings().rate_limit_storage_url == "redis://redis:6379/2"


def test_an_empty_rate_limit_storage_url_means_process_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "")

    assert OrderSettings().rate_limit_storage_url is None


def test_a_rate_limit_storage_url_other_than_redis_refuses_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "memcached://127.0.0.1:11211")

    with pytest.raises(ValidationError, match="RATE_LIMIT_STORAGE_URL"):
        OrderSettings()


def test_a_jwt_secret_shorter_than_32_characters_refuses_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_SECRET", "too-short")

    with pytest.raises(ValidationError, match="at least 32"):
        UserSettings()


def test_a_rejected_jwt_secret_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "too-short")

    with pytest.raises(ValidationError) as error:
        UserSettings()

    assert "too-short" not in str(error.value)


def test_there_are_no_administrators_by_default() -> None:
    assert UserSettings().admin_emails == frozenset()


def test_administrators_are_read_from_admin_emails_ignoring_case_and_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_EMAILS", " Ada@Example.com,bob@example.com ,, ")

    assert UserSettings().admin_emails == {"ada@example.com", "bob@example.com"}
