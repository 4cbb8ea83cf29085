"""The console's OpenID Connect sign-in (``PDP_CONSOLE_AUTH=oidc``), with Authlib: the client;
the console's views (``pdp.web.console.pages``) use it.

- ``/console/connexion/oidc`` sends the browser to the provider: authorisation code flow with
  PKCE (S256), a ``state`` and a ``nonce`` kept in the signed session cookie;
- ``/console/connexion/retour`` is the redirect URI: Authlib checks the state, exchanges the code
  with the PKCE verifier, checks the ID token (signature by the provider's published keys,
  issuer, audience, expiry, nonce); the login is the claim ``PDP_JWT_LOGIN_CLAIM`` names
  (``sub`` by default) and must name a user open today (R-USR-4), then a console session starts
  (``pdp.services.sessions``), as in the demo mode;
- signing out ends the console session here, then, when the provider's discovery document has
  an ``end_session_endpoint``, sends the browser there (RP-initiated logout, with the ID token as
  ``id_token_hint``) to end the provider's session too.

The provider's metadata is read on the first sign-in, not at start-up: a provider down then
makes the sign-in page say so (503), not the service refuse to start. Missing settings are
refused at start-up.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jwt
from flask import Flask, url_for
from werkzeug.wrappers import Response

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.services.tokens import PROVIDER_ALGORITHMS

log = logging.getLogger("pdp.console")

NAME = "provider"


class SignInFailed(Exception):
    """The provider's answer cannot sign anyone in; ``status`` and a French message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class OidcSignIn:
    """The console's OpenID Connect client (one per app)."""

    client: Any  # Authlib's FlaskOAuth2App (untyped)
    settings: Settings

    @classmethod
    def from_settings(cls, app: Flask, settings: Settings) -> OidcSignIn:
        """Register the provider with Authlib; raise ConfigurationError on missing settings."""
        missing = [
            name
            for name, value in (
                ("PDP_CONSOLE_OIDC_ISSUER", settings.console_oidc_issuer),
                ("PDP_CONSOLE_OIDC_CLIENT_ID", settings.console_oidc_client_id),
                (
                    "PDP_CONSOLE_OIDC_CLIENT_SECRET",
                    settings.console_oidc_client_secret.get_secret_value(),
                ),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"PDP_CONSOLE_AUTH=oidc needs {', '.join(missing)}")
        issuer = settings.console_oidc_issuer
        if not issuer.startswith(("https://", "http://")) or (
            settings.production and not issuer.startswith("https://")
        ):
            raise ConfigurationError(
                f"PDP_CONSOLE_OIDC_ISSUER must be an https:// URL, not {issuer!r}"
            )
        if "openid" not in settings.console_oidc_scopes.split():
            raise ConfigurationError("PDP_CONSOLE_OIDC_SCOPES must include openid")
        # Imported here: Authlib and requests cost each worker ~6 MiB, for the oidc mode only.
        from authlib.integrations.flask_client import OAuth

        oauth = OAuth(app)
        client = oauth.register(
            NAME,
            client_id=settings.console_oidc_client_id,
            client_secret=settings.console_oidc_client_secret.get_secret_value(),
            server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.console_oidc_scopes,
                "code_challenge_method": "S256",
                "timeout": 10,
            },
        )
        return cls(client, settings)

    @property
    def origin(self) -> str:
        """The provider's origin (the sign-out form is sent on to it: CSP ``form-action``)."""
        parts = urllib.parse.urlsplit(self.settings.console_oidc_issuer)
        return f"{parts.scheme}://{parts.netloc}"

    def redirect_to_provider(self) -> Response:
        """The redirect starting the authorisation code flow (state, nonce, PKCE)."""
        redirect_uri = self.settings.console_oidc_redirect_uri or url_for(
            "console.oidc_callback", _external=True
        )
        try:
            response: Response = self.client.authorize_redirect(redirect_uri)
        except Exception as exc:  # the metadata cannot be read: requests' and Authlib's errors
            log.warning("console sign-in: the identity provider cannot be reached: %s", exc)
            raise SignInFailed(
                503, "Le fournisseur d'identité est injoignable : réessayez dans un moment."
            ) from None
        return response

    def login_from_callback(self) -> tuple[str, str]:
        """The login of the user the provider sends back (state, code, ID token and nonce
        checked by Authlib), and the ID token (the sign-out's hint)."""
        from authlib.integrations.base_client.errors import OAuthError

        try:
            token = self.client.authorize_access_token()
        except OAuthError as exc:
            log.info("console sign-in refused by the provider or the checks: %s", exc)
            raise SignInFailed(
                401, "La connexion n'a pas abouti (réponse du fournisseur refusée) : recommencez."
            ) from None
        except Exception as exc:  # network, bad JSON, bad ID token (joserfc's errors)
            log.warning("console sign-in failed: %s", exc)
            raise SignInFailed(
                401, "La connexion n'a pas abouti (jeton d'identité invalide) : recommencez."
            ) from None
        claims = dict(token.get("userinfo") or {})
        claim = self.settings.jwt_login_claim
        if claim not in claims:
            # Many providers put the scopes' claims (email, ...) in the userinfo answer only.
            claims = self._userinfo(token, claims)
        login = claims.get(claim)
        if not isinstance(login, str) or not login.strip():
            raise SignInFailed(
                401, f"Le fournisseur d'identité n'a pas transmis l'identifiant ({claim})."
            )
        return login.strip(), str(token.get("id_token", ""))

    def _userinfo(self, token: dict[str, Any], id_claims: dict[str, Any]) -> dict[str, Any]:
        """The userinfo endpoint's claims (JSON, or a JWT signed by the provider's keys), for
        the user of the ID token (same ``sub``, OpenID Connect Core 1.0 §5.3.2); the ID token's
        claims when the provider has no such endpoint or it fails."""
        try:
            metadata = self.client.load_server_metadata()
            endpoint = metadata.get("userinfo_endpoint")
            if not endpoint:
                return id_claims
            answer = self.client.get(endpoint, token=token, timeout=10)
            answer.raise_for_status()
            if answer.headers.get("Content-Type", "").startswith("application/jwt"):
                claims = self._signed_userinfo(answer.text, metadata)
            else:
                claims = answer.json()
        except Exception as exc:
            log.warning("console sign-in: the userinfo endpoint failed: %s", exc)
            return id_claims
        if not isinstance(claims, dict) or claims.get("sub") != id_claims.get("sub"):
            log.warning("console sign-in: userinfo names another subject than the ID token")
            return id_claims
        return {**id_claims, **claims}

    def _signed_userinfo(self, text: str, metadata: dict[str, Any]) -> Any:
        """A userinfo answer as a JWT (ProConnect's): checked with the provider's keys."""
        header = jwt.get_unverified_header(text)
        keys = jwt.PyJWKSet.from_dict(self.client.fetch_jwk_set())
        key = next(k for k in keys.keys if k.key_id == header.get("kid"))
        offered = metadata.get("userinfo_signing_alg_values_supported") or ["RS256", "ES256"]
        return jwt.decode(
            text,
            key,
            algorithms=[a for a in offered if a in PROVIDER_ALGORITHMS],  # never none, nor HS*
            audience=self.settings.console_oidc_client_id,
            issuer=metadata.get("issuer"),
            options={"require": ["sub"]},
        )

    def logout_url(self, id_token: str | None) -> str | None:
        """Where to send the browser to end the provider's session too, or None when the
        provider offers no ``end_session_endpoint`` (or cannot be reached)."""
        try:
            metadata = self.client.load_server_metadata()
            if not metadata.get("end_session_endpoint"):
                return None
            after = self.settings.console_oidc_post_logout_uri or url_for(
                "console.sign_in", _external=True
            )
            result = self.client.create_logout_url(
                post_logout_redirect_uri=after,
                id_token_hint=id_token or None,
                client_id=self.settings.console_oidc_client_id,
            )
        except Exception as exc:
            log.warning("console sign-out: the provider's session is left open: %s", exc)
            return None
        url = result.get("url") if isinstance(result, dict) else None
        return url if isinstance(url, str) else None
