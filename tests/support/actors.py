"""The one test client that acts as an actor: requests to the app as one user or another (HS256
tokens minted with the tests' secret), and the checks every refused, read or committed call
needs. Given the app's audit reader and decision log, a write also checks its audit events, and
a refusal that nothing was audited and that the engine's refusal was logged. ``bearer`` gives
the same header to a test client of one's own."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pdp.core.config import Settings
from pdp.records.audit_trail import AuditReader
from pdp.records.decision_log import MemoryLog
from pdp.services.tokens import mint

from support.constants import SECRET


def bearer(who: str) -> dict[str, str]:
    """The ``Authorization`` header of ``who``: a token minted with the tests' secret."""
    return {"Authorization": f"Bearer {mint(Settings(jwt_secret=SECRET), who)}"}


class Api:
    """The test client, acting as one user or another."""

    def __init__(
        self, client: FlaskClient, audit: AuditReader | None = None, log: MemoryLog | None = None
    ) -> None:
        self.client = client
        self.audit = audit
        self.log = log
        self.settings = Settings(jwt_secret=SECRET)
        self._tokens: dict[str, str] = {}

    # -- requests ------------------------------------------------------------------------------

    def token(self, who: str) -> str:
        """``who``'s bearer token (minted once)."""
        if who not in self._tokens:
            self._tokens[who] = mint(self.settings, who)
        return self._tokens[who]

    def headers(self, who: str | None, request_id: str | None = None) -> dict[str, str]:
        """The bearer header of ``who`` (none when None), and ``X-Request-Id`` when given."""
        out = {}
        if who is not None:
            out["Authorization"] = f"Bearer {self.token(who)}"
        if request_id is not None:
            out["X-Request-Id"] = request_id
        return out

    def call(
        self,
        who: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        query: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> TestResponse:
        """One request as ``who`` (with ``headers`` as given instead, when given). ``raw``: a
        JSON body sent as these very bytes instead of ``body`` encoded by the app's JSON
        provider (orjson refuses a lone surrogate and leaves DEL and C1 unescaped)."""
        if headers is None:
            headers = self.headers(who, request_id)
        if raw is not None:
            return self.client.open(
                path,
                method=method,
                data=raw,
                content_type="application/json",
                query_string=query,
                headers=headers,
            )
        return self.client.open(path, method=method, json=body, query_string=query, headers=headers)

    def revision(self) -> int:
        """The revision ``GET /healthz`` serves."""
        r = self.client.get("/healthz")
        assert r.status_code == 200, r.get_json()
        return int(r.get_json()["revision"])

    # -- the administration API ----------------------------------------------------------------

    def ok(
        self, who: str, method: str, path: str, body: Any = None, status: int = 200
    ) -> dict[str, Any]:
        """The JSON body of a successful call (``status`` expected)."""
        response = self.call(who, method, path, body)
        assert response.status_code == status, response.get_json()
        out = response.get_json()
        assert isinstance(out, dict)
        return out

    def get(self, who: str | None, path: str, status: int = 200, **query: Any) -> dict[str, Any]:
        """The JSON body of ``GET path?query`` as ``who`` (``status`` expected)."""
        r = self.call(who, "GET", path, query=query)
        assert r.status_code == status, r.get_json()
        out: dict[str, Any] = r.get_json()
        return out

    def read(self, who: str, path: str) -> dict[str, Any]:
        """A read as ``who``: 200, and nothing written."""
        before = self.revision()
        r = self.call(who, "GET", path)
        assert r.status_code == 200, r.get_json()
        assert self.revision() == before
        return r.get_json()  # type: ignore[no-any-return]

    def write(
        self,
        who: str,
        method: str,
        path: str,
        body: Any = None,
        status: int = 200,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """A write as ``who`` that must succeed with ``status``: its revision is the next one
        and the one served at once; its audit events (when the audit is known) carry it and
        name the actor."""
        before = self.revision()
        events = None if self.audit is None else len(self.audit.events)
        r = self.call(who, method, path, body, request_id=request_id)
        assert r.status_code == status, r.get_json()
        out: dict[str, Any] = r.get_json()
        assert out["revision"] == before + 1
        assert self.revision() == out["revision"]
        if self.audit is not None:
            new = self.audit.events[events:]
            assert new, "a write leaves audit events"
            assert {(e.actor, e.revision) for e in new} == {(who, out["revision"])}
        return out

    def error(
        self, who: str | None, method: str, path: str, status: int, code: str, body: Any = None
    ) -> dict[str, Any]:
        """The error body of a refused call, after checking its status and code."""
        response = self.call(who, method, path, body)
        assert response.status_code == status, response.get_json()
        err = response.get_json()["error"]
        assert err["code"] == code, err
        assert err["message"]
        return err  # type: ignore[no-any-return]

    def refused(
        self,
        who: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int,
        code: str,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A request that must be refused with ``status`` and ``code``, writing nothing (no
        revision, no audit event), the engine's refusal logged under the id returned."""
        before = self.revision()
        events = None if self.audit is None else len(self.audit.events)
        r = self.call(who, method, path, body, headers=headers)
        out: dict[str, Any] = r.get_json()
        assert (r.status_code, out["error"]["code"]) == (status, code), out
        assert self.revision() == before, "a refused request wrote"
        if self.audit is not None:
            assert len(self.audit.events) == events, "a refused request emitted audit events"
        if status == 403 and self.log is not None:  # logged under the id returned (R-ADM-7)
            details = out["error"]["details"]
            logged = {e["decision_id"]: e for e in self.log.entries}
            entry = logged[details["decision_id"]]
            assert (entry["kind"], entry["allowed"], entry["reason"]) == ("admin", False, code)
            assert (entry["action"], entry["target"]) == (details["action"], details["target"])
        return out

    # -- decisions -----------------------------------------------------------------------------

    def check(
        self,
        user: str,
        service: str,
        role: str | None = None,
        caf: str | None = None,
        *,
        request_id: str | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """``POST /v1/check``; the answer's revision is the one served."""
        body: dict[str, Any] = {"user": user, "service": service, **kw}
        if role is not None:
            body["role"] = role
        if caf is not None:
            body["caf"] = caf
        r = self.call(None, "POST", "/v1/check", body, request_id=request_id)
        assert r.status_code == 200, r.get_json()
        out: dict[str, Any] = r.get_json()
        assert out["revision"] == self.revision()
        return out

    def allowed(self, user: str, service: str, role: str | None = None, **kw: Any) -> bool:
        """Whether ``user`` may use ``service`` (with ``role``) now."""
        return bool(self.check(user, service, role, **kw)["allowed"])

    def reason(self, user: str, service: str, role: str | None = None, **kw: Any) -> str:
        """The reason code of the check."""
        return str(self.check(user, service, role, **kw)["reason"]["code"])

    def permissions(self, login: str) -> list[dict[str, Any]]:
        """The services of ``GET /v1/users/<login>/permissions``; its revision is the one
        served."""
        r = self.client.get(f"/v1/users/{login}/permissions")
        assert r.status_code == 200, r.get_json()
        out = r.get_json()
        assert out["revision"] == self.revision()
        return out["services"]  # type: ignore[no-any-return]

    def services(self, login: str) -> dict[str, dict[str, Any]]:
        """``login``'s permissions by service: {"roles", "cafs", "groups"}."""
        return {
            s["service"]: {
                "roles": s["roles"],
                "cafs": s["cafs"],
                "groups": sorted({g["group"] for g in s["grants"] if g["group"]}),
            }
            for s in self.permissions(login)
        }

    def admin_check(self, actor: str, action: str, target: str) -> dict[str, Any]:
        """``POST /v1/admin/check`` (no token needed), which must answer 200."""
        r = self.client.post(
            "/v1/admin/check", json={"actor": actor, "action": action, "target": target}
        )
        assert r.status_code == 200, r.get_json()
        return r.get_json()  # type: ignore[no-any-return]

    def may(self, actor: str, action: str, target: str) -> str:
        """The reason code of the admin check."""
        return str(self.admin_check(actor, action, target)["reason"]["code"])
