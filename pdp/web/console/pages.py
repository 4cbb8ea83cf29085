"""Sign-in, sign-out, the welcome page, and what every console request goes through."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, session, url_for
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.services.sessions import REFUSED, REPLACED, SIGNED_OUT
from pdp.web.api.errors import with_headers
from pdp.web.console import auth
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, page
from pdp.web.console.security import add_headers, csrf_ok, csrf_token
from pdp.web.container import services
from pdp.web.oidc_signin import SignInFailed

ID_TOKEN_KEY = "oidc_id_token"  # in the signed session cookie: the logout's id_token_hint

# Endpoints answering without a signed-in user.
PUBLIC = frozenset(
    {
        "console.sign_in",
        "console.sign_in_as",
        "console.sign_out",
        "console.static",
        "console.oidc_start",
        "console.oidc_callback",
    }
)


@bp.context_processor
def _context() -> dict[str, Any]:
    login = g.get("console_login")
    org = auth.home_organisation(login) if login else None
    return {
        "csrf_token": csrf_token,
        "signed_in": login,
        # The menu's "Mes utilisateurs" only for whom the admin check lets read the directory.
        "menu_org": org if org and allowed(Action.DIRECTORY_READ, f"organisation:{org}") else None,
        "auth_mode": services().console.trust.mode,
    }


@bp.before_request
def _guard() -> Response | None:
    """Find who claims to be signed in and their live session (a new person gets a new
    session), refuse a form without this session's token (nothing done), then check the user
    is open: a refused user's session ends."""
    if request.endpoint == "console.static":
        return None  # the stylesheet is public: no session read for it
    login, live = auth.identify()
    if request.method == "POST" and not csrf_ok():
        return page(
            "error.html",
            400,
            title="Requête refusée",
            message="Le formulaire a expiré ou ne vient pas de la console : rechargez la page "
            "et recommencez. Rien n'a été modifié.",
        )
    g.console_login = None
    g.console_session = live
    if login is not None:
        why = auth.refusal(login)
        if why is not None:
            auth.end_session(live, REFUSED)
            g.console_session = None
            if services().console.trust.mode == "trusted-header":
                return page("error.html", 403, title="Accès refusé", message=why)
            flash(why, "error")
        else:
            g.console_login = login
            if live is None:  # behind the proxy: the portal vouches, a console session starts
                g.console_session = auth.begin_session(login)
    if request.endpoint in PUBLIC or g.console_login is not None:
        return None
    if services().console.trust.mode == "trusted-header":
        return page(
            "error.html",
            401,
            title="Connexion requise",
            message="Connectez-vous au portail Mon Compte Partenaire pour accéder à la console.",
        )
    return redirect(url_for("console.sign_in"))


@bp.after_request
def _headers(response: Response) -> Response:
    oidc = services().console.oidc
    # The sign-out form is sent on to the provider (RP-initiated logout): allowed as a target.
    return add_headers(response, oidc.origin if oidc is not None else "")


@bp.errorhandler(PdpError)
def _refused(exc: PdpError) -> Response:
    titles = {403: "Accès refusé", 404: "Introuvable", 409: "Action impossible"}
    return page(
        "error.html", exc.status, title=titles.get(exc.status, "Erreur"), message=exc.message
    )


@bp.errorhandler(ValidationError)
def _invalid(_exc: ValidationError) -> Response:
    return page("error.html", 400, title="Requête invalide", message="Paramètre invalide.")


_HTTP_PAGES = {
    400: ("Requête refusée", "La requête est invalide."),
    404: ("Page introuvable", "Cette page n'existe pas."),
    405: ("Méthode non autorisée", "Cette page ne s'utilise pas ainsi."),
    413: ("Requête trop volumineuse", "Le formulaire envoyé est trop volumineux."),
    500: ("Erreur interne", "Une erreur interne est survenue : rien n'a été modifié."),
}


def error_page(status: int) -> Response | None:
    """A French error page with the console's headers for a path under /console (routing
    errors and unexpected exceptions reach the app's handlers, not the blueprint's); None
    elsewhere, where the API answers JSON."""
    if request.path != "/console" and not request.path.startswith("/console/"):
        return None
    title, message = _HTTP_PAGES.get(status, ("Erreur", "Requête refusée."))
    return add_headers(page("error.html", status, title=title, message=message))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    status = exc.code or 500
    title, message = _HTTP_PAGES.get(status, ("Erreur", "Requête refusée."))
    return with_headers(page("error.html", status, title=title, message=message), exc)


@bp.get("/connexion")
def sign_in() -> Response:
    """The demo sign-in page: one button per open user (oidc: a link to the identity
    provider; trusted-header: a pointer to the portal)."""
    mode = services().console.trust.mode
    return page("connexion.html", accounts=auth.accounts() if mode == "demo" else [])


@bp.post("/connexion")
def sign_in_as() -> Response:
    """Demo sign-in as the chosen open user; refused (403) for a closed or unknown user."""
    if services().console.trust.mode != "demo":
        return page(
            "error.html",
            404,
            title="Erreur",
            message="La connexion se fait par le portail Mon Compte Partenaire.",
        )
    login = request.form.get("login", "").strip()
    why = auth.refusal(login) if login else "Choisissez un compte."
    if why is not None:
        return page("connexion.html", 403, accounts=auth.accounts(), error=why)
    auth.end_session(g.console_session, REPLACED)
    g.console_session = auth.begin_session(login)  # a new session, a new token (no fixation)
    flash(f"Vous êtes connecté(e) en tant que {login}.", "success")
    return redirect(url_for("console.welcome"))


@bp.get("/connexion/oidc")
def oidc_start() -> Response:
    """OpenID Connect: off to the identity provider (authorisation code, PKCE, state, nonce)."""
    oidc = services().console.oidc
    if oidc is None:  # another sign-in mode: its own sign-in page
        return redirect(url_for("console.sign_in"))
    try:
        return oidc.redirect_to_provider()
    except SignInFailed as exc:
        return page("connexion.html", exc.status, error=exc.message)


@bp.get("/connexion/retour")
def oidc_callback() -> Response:
    """OpenID Connect: back from the provider. The user must be open today (R-USR-4); a new
    console session starts (a new id, a new CSRF token: no fixation)."""
    oidc = services().console.oidc
    if oidc is None:  # another sign-in mode: its own sign-in page
        return redirect(url_for("console.sign_in"))
    try:
        login, id_token = oidc.login_from_callback()
    except SignInFailed as exc:
        return page("connexion.html", exc.status, error=exc.message)
    why = auth.refusal(login)
    if why is not None:
        return page("connexion.html", 403, error=why)
    auth.end_session(g.console_session, REPLACED)
    g.console_session = auth.begin_session(login)
    session[ID_TOKEN_KEY] = id_token  # the sign-out's id_token_hint
    flash(f"Vous êtes connecté(e) en tant que {login}.", "success")
    return redirect(url_for("console.welcome"))


@bp.post("/deconnexion")
def sign_out() -> Response:
    """End the session, everywhere: a copy of its cookie signs nobody in any more. Signed in
    through an identity provider that offers it: its session is ended too (RP-initiated
    logout), which then sends the browser back to the sign-in page."""
    id_token = session.get(ID_TOKEN_KEY)
    auth.end_session(g.console_session, SIGNED_OUT)
    flash("Vous êtes déconnecté(e).", "success")
    oidc = services().console.oidc
    if oidc is not None:
        elsewhere = oidc.logout_url(id_token if isinstance(id_token, str) else None)
        if elsewhere is not None:
            return redirect(elsewhere)
    return redirect(url_for("console.sign_in"))


@bp.get("/")
def welcome() -> Response:
    """The welcome page: the services the user may use today (R-DEC-4) and the
    "Gestion des habilitations" entries the admin check allows (R-ADM-7)."""
    login = actor()
    listing = services().decisions.permissions(login, None)
    catalogue = services().decisions.catalogue
    tiles = [
        {
            "label": catalogue.services[s.service].label
            if s.service in catalogue.services
            else s.service,
            "roles": s.roles,
            "cafs": s.cafs,
        }
        for s in listing.services
    ]
    entries = []
    org = auth.home_organisation(login)
    if org is not None:
        target = f"organisation:{org}"
        if allowed(Action.DIRECTORY_READ, target):
            entries.append(("Mes utilisateurs", url_for("console.users_list", org=org)))
        if allowed(Action.USER_CREATE, target):
            entries.append(("Créer un utilisateur", url_for("console.user_new", org=org)))
    return page("accueil.html", tiles=tiles, entries=entries)
