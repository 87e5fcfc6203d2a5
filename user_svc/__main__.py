"""`python -m user_svc`: create and migrate the database, then serve API, relay and consumer."""

from shared import service
from user_svc.app import create_app
from user_svc.settings import UserSettings

if __name__ == "__main__":
    service.serve(UserSettings(), package="user_svc", app=create_app)
