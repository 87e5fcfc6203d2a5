"""Persistence: the one way a service reaches its database.

Every statement is a SQLAlchemy Core statement compiled once (`statements`), run by asyncpg on a
connection the unit of work owns, inside the transaction it owns (`unit_of_work`). SQLAlchemy
does what it is best at, schema and statement building and Alembic migrations (`migrations`);
asyncpg executes. Rows come back as asyncpg records, whichever repository or query asked.
"""
