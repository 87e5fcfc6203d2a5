#!/usr/bin/env bash
# A new Alembic revision for one service, written from what its models (models.py) changed since
# its last migration: `make migration SERVICE=order_svc MESSAGE="add a column"`.
#
# Autogenerate compares the models with a database at the head revision. That database is a
# scratch one, created here on the PostgreSQL of `TEST_POSTGRES_URL` (default: the local one),
# brought to head by the service's own `migrate` role, and dropped afterwards, so the service's
# real database is never touched. Revisions are numbered 0001, 0002, ...: the next number is
# taken. Read the file it writes before committing it: autogenerate misses some changes
# (renames, server defaults, triggers) and the revision is yours.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVICE="${1:?usage: scripts/new-migration.sh SERVICE MESSAGE}"
MESSAGE="${2:?usage: scripts/new-migration.sh SERVICE MESSAGE}"
PY="${VENV:-.venv}/bin/python"
[[ -f "${SERVICE}/alembic.ini" ]] || { echo "error: no ${SERVICE}/alembic.ini: not a service" >&2; exit 2; }

SERVER="${TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432}"
SCRATCH="${SERVER}/migration_${SERVICE}_$("${PY}" -c 'import secrets; print(secrets.token_hex(6))')"
drop() { "${PY}" -c 'import asyncio, sys; from shared.persistence.database import drop_database; asyncio.run(drop_database(sys.argv[1]))' "${SCRATCH}"; }
trap drop EXIT

PREFIX="$(echo "${SERVICE}" | tr '[:lower:]' '[:upper:]')"
env "${PREFIX}_DATABASE_URL=${SCRATCH}" "${PY}" -m "${SERVICE}" migrate

last="$(find "${SERVICE}/migrations/versions" -name '[0-9][0-9][0-9][0-9]_*.py' -printf '%f\n' | sort | tail -n 1)"
next="$(printf '%04d' $((10#${last:0:4} + 1)))"
"${PY}" -m alembic -c "${SERVICE}/alembic.ini" -x "url=${SCRATCH}" \
    revision --autogenerate --rev-id "${next}" -m "${MESSAGE}"
"${VENV:-.venv}/bin/ruff" format --quiet "${SERVICE}/migrations/versions/${next}_"*.py
"${VENV:-.venv}/bin/ruff" check --fix --quiet "${SERVICE}/migrations/versions/${next}_"*.py
