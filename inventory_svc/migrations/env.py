from inventory_svc.models import metadata
from shared.persistence.migration_env import run_migrations

run_migrations(metadata)
