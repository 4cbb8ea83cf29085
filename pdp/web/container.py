"""What the app factory builds, in one typed container kept on the app (``services()``).

The composition root (``pdp.web.app.create_app``) builds every collaborator once and stores
them here, under one key of ``app.extensions``; views, the request guard, the console and the
gunicorn hooks (``pdp.web.server``) read them through ``services()`` only, typed, instead of
each looking up string keys of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine
from werkzeug.wrappers import Response

from pdp.adapters.watcher import PgWatcher
from pdp.core.config import Settings
from pdp.core.masking import Masker
from pdp.engine.policy import PolicyEngine
from pdp.records.checkpoints import CheckpointWriter
from pdp.records.decision_log import DecisionLog, Shipper
from pdp.records.retention import Retention
from pdp.services.access import AccessDocuments
from pdp.services.admin.service import AdminService
from pdp.services.api_keys import ClientRegistry
from pdp.services.auditing import AuditorQueries
from pdp.services.decisions import DecisionService
from pdp.services.person_file import PersonFiles
from pdp.services.sessions import SessionStore
from pdp.services.tokens import TokenVerifier

# Modules of their own, apart from the guard and the console that read this container: so it
# can name their types without an import cycle (tests/engine/test_architecture.py).
from pdp.web.api.rate_limit import RateLimiter
from pdp.web.oidc_signin import OidcSignIn
from pdp.web.proxy_trust import ProxyTrust

# Flask's convention: an extension's name as its key. Not "pdp": pdp.client.flask uses that
# one in the apps that call the service.
EXTENSION = "pdp.web"


@dataclass(frozen=True)
class ConsoleParts:
    """What the console adds when it is mounted (``PDP_CONSOLE_AUTH`` other than ``off``)."""

    trust: ProxyTrust
    sessions: SessionStore
    # The API's error handlers (pdp.web.api.errors) ask it for the console's own paths.
    error_page: Callable[[int], Response | None]
    # PDP_CONSOLE_AUTH=oidc: the OpenID Connect client; None in the other modes.
    oidc: OidcSignIn | None = None


@dataclass(frozen=True)
class Services:
    """Every collaborator of one app; the optional ones are None when the settings leave them
    out (or a test gives its own decision log, which then has no shipper)."""

    settings: Settings
    db: Engine
    engine: PolicyEngine
    masker: Masker
    verifier: TokenVerifier | None
    decision_log: DecisionLog
    shipper: Shipper | None
    decisions: DecisionService
    admin: AdminService
    auditing: AuditorQueries
    access: AccessDocuments
    persons: PersonFiles  # a person's file (GDPR art. 15, pdp.services.person_file)
    api_keys: ClientRegistry
    checkpoints: CheckpointWriter | None
    watcher: PgWatcher | None
    limiter: RateLimiter | None
    mounted_console: ConsoleParts | None
    # Prunes the decision log (pdp.records.retention), started in each worker after the fork.
    retention: Retention | None = None

    @property
    def console(self) -> ConsoleParts:
        """The console's parts, for its own views (registered only when it is mounted)."""
        if self.mounted_console is None:
            raise RuntimeError("the console is not mounted (PDP_CONSOLE_AUTH=off)")
        return self.mounted_console

    def install(self, app: Flask) -> None:
        """Keep this container on ``app`` (once: the composition root builds one per app)."""
        if EXTENSION in app.extensions:
            raise RuntimeError(f"{app.name} already has its services")
        app.extensions[EXTENSION] = self


def services(app: Flask | None = None) -> Services:
    """The services of ``app``, by default the app of the current request or app context."""
    found = (current_app if app is None else app).extensions[EXTENSION]
    if not isinstance(found, Services):
        raise RuntimeError("the app was not built by pdp.web.app.create_app")
    return found
