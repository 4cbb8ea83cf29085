"""A Cdap-like front-end: two pages guarded by different profiles, a menu that shows only what
the signed-in user may open, and a family's file whose tabs and actions are those the user's
profiles open (the catalogue's features), each opening logged with the file's number.

    PDP_URL=http://127.0.0.1:8000 PDP_API_KEY=$PDP_KEY flask --app examples.cdap_front.app run

Who is signed in would come from the portal's identity provider; here a sign-in page lists the
demo accounts (no password: a stand-in for the portal, never for production)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from pdp.client.flask import PDP

#: The demo accounts the sign-in page offers (pdp's demo data, ``pdp demo load``).
DEMO_LOGINS = ("bruno.petit", "chloe.roux", "nadia.benali", "david.leroy", "lea.fontaine")

pdp = PDP()


@pdp.user_loader
def signed_in() -> str | None:
    """The login the portal signed in (here: the session's)."""
    login = session.get("login")
    return login if isinstance(login, str) else None


def asked_caf() -> str | None:
    """The Caf of the file being read (``?caf=``): Cdap is decided per Caf (R-CON-3)."""
    return request.args.get("caf") or None


def asked_tab() -> str | None:
    """The tab (a Cdap feature) the page opens."""
    return (request.view_args or {}).get("tab")


def asked_file() -> str | None:
    """The allocataire number of the file the page opens: logged pseudonymised by pdp."""
    number = (request.view_args or {}).get("number")
    return None if number is None else str(number)


#: A Cdap file's tabs and actions, as the catalogue names its features, with their labels.
TABS = (
    ("synthese", "Synthèse"),
    ("resume", "Résumé du dossier"),
    ("paiements", "Paiements"),
    ("droits", "Droits"),
    ("famille", "Composition de la famille"),
    ("ressources", "Ressources"),
    ("rsa", "RSA"),
    ("courriers", "Courriers"),
    ("logement", "Informations logement"),
    ("creances", "Créances"),
)
ACTIONS = (("dialogue", "Dialogue"), ("attestation", "Attestation"))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The front-end; ``config`` overrides the environment (``PDP_URL``, ``PDP_API_KEY``)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("CDAP_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PDP_URL=os.environ.get("PDP_URL", "http://127.0.0.1:8000"),
        PDP_API_KEY=os.environ.get("PDP_API_KEY", ""),
        PDP_TIMEOUT=float(os.environ.get("PDP_TIMEOUT", "1.0")),
        PDP_CACHE_TTL=float(os.environ.get("PDP_CACHE_TTL", "0")),
    )
    app.config.update(config or {})
    pdp.init_app(app)

    @app.get("/")
    def home() -> ResponseReturnValue:
        """The menu: each entry shown only if the listing opens it (one call per page)."""
        return render_template("home.html", login=signed_in(), logins=DEMO_LOGINS)

    @app.post("/connexion")
    def sign_in() -> ResponseReturnValue:
        login = request.form.get("login", "")
        if login not in DEMO_LOGINS:
            return render_template("home.html", login=None, logins=DEMO_LOGINS), 400
        session["login"] = login
        return redirect(url_for("home"))

    @app.post("/deconnexion")
    def sign_out() -> ResponseReturnValue:
        session.clear()
        return redirect(url_for("home"))

    @app.get("/dossiers")
    @pdp.requires("cdap", role="T1", caf=asked_caf)
    def files() -> ResponseReturnValue:
        """Consultation of a file: Cdap's T1 profile."""
        return render_template("page.html", title="Consulter un dossier", caf=asked_caf())

    @app.get("/instruction")
    @pdp.requires("cdap", role="T18", caf=asked_caf)
    def instruction() -> ResponseReturnValue:
        """Instruction of a file: Cdap's T18 profile."""
        return render_template("page.html", title="Instruire un dossier", caf=asked_caf())

    @app.get("/dossiers/<int:number>/<tab>")
    @pdp.requires("cdap", feature=asked_tab, caf=asked_caf, allocataire=asked_file)
    def file_tab(number: int, tab: str) -> ResponseReturnValue:
        """One tab of a family's file, shown only if one of the user's profiles opens it; the
        tabs and action buttons offered are those the permissions listing opens."""
        labels = dict(TABS + ACTIONS)
        return render_template(
            "file.html",
            number=number,
            tab=tab,
            title=labels.get(tab, tab),
            tabs=TABS,
            actions=ACTIONS,
            caf=asked_caf(),
        )

    return app
