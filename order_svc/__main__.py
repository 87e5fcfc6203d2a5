"""`python -m order_svc [all|api|worker|relay|migrate]`: run order_svc, or one role of it (see
`shared.runtime.roles`)."""

from order_svc.app import SPEC, create_app
from order_svc.settings import OrderSettings
from shared.runtime import composition

if __name__ == "__main__":
    composition.main(SPEC, OrderSettings, create_app)
