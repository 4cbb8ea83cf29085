"""The console through Flask's test client: the CSRF token of a form, and the demo sign-in."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


def token(client: FlaskClient, path: str = "/console/connexion") -> str:
    """The CSRF token of the session, read from a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def sign_in(client: FlaskClient, login: str) -> TestResponse:
    return client.post("/console/connexion", data={"login": login, "csrf_token": token(client)})


USERS = "/console/organisations/mairie-montreuil/utilisateurs"
