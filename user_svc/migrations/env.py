from shared.persistence.migration_env import run_migrations
from user_svc.models import metadata

run_migrations(metadata)
