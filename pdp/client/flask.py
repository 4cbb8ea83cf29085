"""``PDP``: a Flask extension for front-ends (``pip install 'pdp[flask]'``).

    pdp = PDP(app)                      # PDP_URL, PDP_API_KEY from app.config

    @pdp.user_loader
    def current_login() -> str | None:
        return session.get("login")

    @app.get("/instruction/<caf>")
    @pdp.requires("cdap", role="T18", caf=lambda: request.view_args["caf"])
    def instruction(caf): ...

and in templates ``{% if pdp_can("cdap", "T18") %}…{% endif %}`` to show a menu entry only to
those who may use it. A denial answers 403 with the French reason; no signed-in user, 401;
a decision point that cannot be reached denies (fail closed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import Flask, Response, current_app, g, jsonify, render_template_string, request
from flask.typing import ResponseReturnValue

from pdp.client.client import Client
from pdp.client.models import Decision, Permissions, Reason

P = ParamSpec("P")
R = TypeVar("R")

UNAUTHENTICATED = Reason("UNAUTHENTICATED", "Authentification requise : veuillez vous connecter.")

_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><main><h1>{{ title }}</h1><p role="alert">{{ reason.message }}</p>
<p><small>Code : {{ reason.code }}</small></p></main></body></html>"""


@dataclass(frozen=True, slots=True)
class _State:
    client: Client
    owned: bool


def _refusal(reason: Reason, status: int) -> ResponseReturnValue:
    """The default refusal: JSON for API callers, else a small French HTML page."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if best == "application/json":
        response = jsonify(error={"code": reason.code, "message": reason.message})
    else:
        title = "Accès refusé" if status == 403 else "Connexion requise"
        response = Response(render_template_string(_PAGE, title=title, reason=reason))
    response.status_code = status
    return response


class PDP:
    """Asks the decision point before a view runs, and lends templates the user's rights.

    ``client``: a ready ``Client`` (else one is built from ``app.config``: ``PDP_URL``,
    ``PDP_API_KEY``, ``PDP_TIMEOUT`` seconds (default 2), ``PDP_RETRIES`` (2), ``PDP_CACHE_TTL``
    seconds (0: no cache)). ``current_user``: a callable returning the signed-in login, or None.
    ``on_denied(decision)`` and ``on_unauthenticated()`` replace the default 403 and 401."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        client: Client | None = None,
        current_user: Callable[[], str | None] | None = None,
        on_denied: Callable[[Decision], ResponseReturnValue] | None = None,
        on_unauthenticated: Callable[[], ResponseReturnValue] | None = None,
    ) -> None:
        self._client = client
        self._current_user = current_user
        self._on_denied = on_denied or (lambda decision: _refusal(decision.reason, 403))
        self._on_unauthenticated = on_unauthenticated or (lambda: _refusal(UNAUTHENTICATED, 401))
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Binds the extension to ``app``: its client, and the template helpers ``pdp_can``
        and ``pdp_permissions``."""
        client = self._client
        if client is None:
            url, key = app.config.get("PDP_URL"), app.config.get("PDP_API_KEY")
            if not url or not key:
                raise RuntimeError("PDP needs PDP_URL and PDP_API_KEY in app.config, or a client")
            client = Client(
                url,
                key,
                timeout=float(app.config.get("PDP_TIMEOUT", 2.0)),
                retries=int(app.config.get("PDP_RETRIES", 2)),
                cache_ttl=float(app.config.get("PDP_CACHE_TTL", 0.0)),
            )
        app.extensions["pdp"] = _State(client, owned=self._client is None)
        app.add_template_global(self.can, "pdp_can")
        app.add_template_global(self.permissions, "pdp_permissions")

    def user_loader(self, loader: Callable[[], str | None]) -> Callable[[], str | None]:
        """Decorator naming the callable that returns the signed-in login (or None)."""
        self._current_user = loader
        return loader

    @property
    def client(self) -> Client:
        """The current app's client."""
        state: _State = current_app.extensions["pdp"]
        return state.client

    def current_user(self) -> str | None:
        """The signed-in login, as the configured callable says (None: nobody)."""
        if self._current_user is None:
            raise RuntimeError("PDP has no current_user callable: use @pdp.user_loader")
        return self._current_user()

    def requires(
        self,
        service: str,
        role: str | None = None,
        *,
        caf: str | Callable[[], str | None] | None = None,
        feature: str | Callable[[], str | None] | None = None,
        allocataire: Callable[[], str | None] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R | ResponseReturnValue]]:
        """Decorator: the view runs only if the signed-in user may use ``service`` (with
        ``role``, or opening ``feature``, for ``caf``: each a value, or a callable reading it
        from the request; ``allocataire``: a callable reading the number of the family's file
        the view opens, for the decision log). Otherwise
        403 with the French reason (401 when nobody is signed in). The decision is kept in
        ``g.pdp_decision``."""

        def decorate(view: Callable[P, R]) -> Callable[P, R | ResponseReturnValue]:
            @wraps(view)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R | ResponseReturnValue:
                login = self.current_user()
                if not login:
                    return self._on_unauthenticated()
                decision = self.client.check(
                    login,
                    service,
                    role=role,
                    caf=caf() if callable(caf) else caf,
                    feature=feature() if callable(feature) else feature,
                    allocataire=allocataire() if allocataire is not None else None,
                )
                g.pdp_decision = decision
                if not decision.allowed:
                    return self._on_denied(decision)
                return view(*args, **kwargs)

            return guarded

        return decorate

    def permissions(self) -> Permissions:
        """The signed-in user's permissions listing, asked once per request (empty when nobody
        is signed in or the call failed)."""
        cached: Permissions | None = g.get("pdp_permissions")
        if cached is not None:
            return cached
        login = self.current_user()
        listing = (
            self.client.permissions(login) if login else Permissions("", error=UNAUTHENTICATED)
        )
        g.pdp_permissions = listing
        return listing

    def can(
        self,
        service: str,
        role: str | None = None,
        caf: str | None = None,
        feature: str | None = None,
    ) -> bool:
        """For templates: may the signed-in user use ``service`` (``role``, ``caf``, opening
        ``feature``) today? From the permissions listing, so a page with many menu entries
        (a file's tabs) makes one call."""
        return self.permissions().allows(service, role, caf, feature)

    @staticmethod
    def close(app: Flask) -> None:
        """Closes the connections of the client the extension built for ``app``."""
        state: _State | None = app.extensions.get("pdp")
        if state is not None and state.owned:
            state.client.close()
