"""The URLs the services' clients are given: a multi-host database URL reaches the same servers
through asyncpg as through SQLAlchemy, and the AMQP URL gets a heartbeat unless it has one."""

from __future__ import annotations

from shared.messaging.amqp import HEARTBEAT_SECONDS, with_heartbeat
from shared.persistence.database import dsn


def test_a_single_host_url_becomes_the_same_dsn() -> None:
    url = "postgresql+asyncpg://postgres:secret@127.0.0.1:5432/user_svc"
    assert dsn(url) == "postgresql://postgres:secret@127.0.0.1:5432/user_svc"


def test_every_host_of_a_multi_host_url_goes_into_the_dsn_in_order() -> None:
    url = (
        "postgresql+asyncpg://postgres@/user_svc"
        "?host=db-1:5432&host=db-2:5433&target_session_attrs=read-write"
    )
    assert dsn(url) == (
        "postgresql://postgres@db-1:5432,db-2:5433/user_svc?target_session_attrs=read-write"
    )


def test_the_comma_separated_multi_host_form_is_read_the_same_way() -> None:
    url = "postgresql+asyncpg://postgres@/user_svc?host=db-1,db-2&port=5432,5433"
    assert dsn(url) == "postgresql://postgres@db-1:5432,db-2:5433/user_svc"


def test_a_password_stays_quoted_in_a_multi_host_dsn() -> None:
    url = "postgresql+asyncpg://app:p%40ss@/db?host=db-1:5432&host=db-2:5432"
    assert dsn(url) == "postgresql://app:p%40ss@db-1:5432,db-2:5432/db"


def test_the_amqp_url_gets_the_heartbeat() -> None:
    assert with_heartbeat("amqp://guest:guest@broker:5672/eventful") == (
        f"amqp://guest:guest@broker:5672/eventful?heartbeat={HEARTBEAT_SECONDS}"
    )


def test_a_heartbeat_set_in_the_amqp_url_is_kept() -> None:
    url = "amqp://guest:guest@broker:5672/?heartbeat=10&name=x"
    assert with_heartbeat(url) == url
