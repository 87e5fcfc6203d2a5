"""`python -m user_svc [all|api|worker|relay|migrate]`: run user_svc, or one role of it (see
`shared.runtime.roles`)."""

from shared.runtime import composition
from user_svc.app import SPEC, create_app
from user_svc.settings import UserSettings

if __name__ == "__main__":
    composition.main(SPEC, UserSettings, create_app)
