"""`python -m inventory_svc [all|api|worker|relay|migrate]`: run inventory_svc, or one role of
it (see `shared.runtime.roles`)."""

from inventory_svc.app import SPEC, create_app
from inventory_svc.settings import InventorySettings
from shared.runtime import composition

if __name__ == "__main__":
    composition.main(SPEC, InventorySettings, create_app)
