"""What every console view uses: the services, the signed-in actor, the admin check, pages."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, make_response, render_template

from pdp.admin.service import AdminService
from pdp.queries import DecisionService


def admin() -> AdminService:
    """The app's administration service."""
    found: AdminService = current_app.extensions["pdp.admin"]
    return found


def decisions() -> DecisionService:
    """The app's decision service."""
    found: DecisionService = current_app.extensions["pdp.decisions"]
    return found


def actor() -> str:
    """The signed-in user's login (the pages that need none never call this)."""
    login: str = g.console_login
    return login


def allowed(action: str, target: str) -> bool:
    """Whether the signed-in user may do ``action`` on ``target`` (R-ADM-7): what to show."""
    return bool(admin().check(actor(), action, target)["allowed"])


def page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a console template with ``status``."""
    response = make_response(render_template(f"console/{template}", **context), status)
    return response
