"""`python -m user_svc [all|api|worker|relay|migrate]`: run user_svc, or one role of it (see
`shared.roles`)."""

from shared import service
from user_svc.app import SPEC, create_app
from user_svc.settings import UserSettings

if __name__ == "__main__":
    service.main(SPEC, UserSettings, create_app)
