"""`python -m order_svc`: create and migrate the database, then serve API, relay and consumer."""

from order_svc.app import create_app
from order_svc.settings import OrderSettings
from shared import service

if __name__ == "__main__":
    service.serve(OrderSettings(), package="order_svc", app=create_app)
