"""A test client for the administration API: requests as one actor or another (HS256 tokens
minted with the tests' secret), and the checks every refused or committed call needs."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pdp.core.config import Settings
from pdp.services.tokens import mint

SECRET = "s" * 40  # the jwt_secret the tests give make_app
API_KEY_ID = "000000000001"
API_KEY = f"pdp_{API_KEY_ID}_{'t' * 43}"  # the tests' API key (conftest.add_test_key)
API_HEADERS = {"X-Api-Key": API_KEY}


class Api:
    """The test client, acting as one user or another."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(
        self, method: str, path: str, who: str | None = None, json: Any = None
    ) -> TestResponse:
        """Send a request with ``who``'s bearer token (none when ``who`` is None)."""
        headers = {}
        if who is not None:
            headers["Authorization"] = f"Bearer {mint(Settings(jwt_secret=SECRET), who)}"
        return self.client.open(path, method=method, headers=headers, json=json)

    def ok(
        self, method: str, path: str, who: str, json: Any = None, status: int = 200
    ) -> dict[str, Any]:
        """The JSON body of a successful call (``status`` expected)."""
        response = self.call(method, path, who, json)
        assert response.status_code == status, response.get_json()
        body = response.get_json()
        assert isinstance(body, dict)
        return body

    def error(
        self, method: str, path: str, who: str | None, status: int, code: str, json: Any = None
    ) -> dict[str, Any]:
        """The error body of a refused call, after checking its status and code."""
        response = self.call(method, path, who, json)
        assert response.status_code == status, response.get_json()
        err = response.get_json()["error"]
        assert err["code"] == code, err
        assert err["message"]
        return err  # type: ignore[no-any-return]

    def revision(self) -> int:
        """The revision served (GET /healthz)."""
        body = self.client.get("/healthz").get_json()
        return int(body["revision"])

    def allowed(self, **query: Any) -> bool:
        """POST /v1/check."""
        response = self.client.post("/v1/check", json=query)
        assert response.status_code == 200, response.get_json()
        return bool(response.get_json()["allowed"])
