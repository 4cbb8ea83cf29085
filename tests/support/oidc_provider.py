"""A real OpenID Connect provider for the tests: Node's ``oidc-provider`` (tests/support/oidc),
started on a free port with one client, the demo's logins as users, and key sets the tests
choose (restart it with another set to rotate keys, stop it to play an outage).

Tokens are obtained as a user would: the authorisation code flow with PKCE, driven over HTTP
through the provider's sign-in and consent pages (``Provider.token``), the access token a JWT
for the administration API's resource.

Without node (or npm, to install the package) the tests are skipped, with the reason, unless
``PDP_TEST_OIDC=1`` (CI) asks for them: then they fail.
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support.servers import free_port

HERE = Path(__file__).parent / "oidc"
OIDC_ENV = "PDP_TEST_OIDC"
CLIENT_ID = "pdp-console"
CLIENT_SECRET = "tests-only-client-secret-0123456789"
AUDIENCE = "pdp-admin"
RESOURCE = "https://pdp.test/admin"
OTHER_RESOURCE = "https://other.test/api"
SHORT_RESOURCE = "https://pdp.test/admin-short"
ES_RESOURCE = "https://pdp.test/admin-es256"  # its tokens signed with ES256 (needs an EC key)
USERS = ("alice.martin", "bruno.petit", "david.leroy")  # david.leroy: closed in the demo
STARTUP_TIMEOUT = 30.0


def need_node() -> None:
    """Skip (or fail, when PDP_TEST_OIDC=1) unless node and npm are here; install the
    provider's package (``npm ci``) when its node_modules is missing."""
    problem = None
    if shutil.which("node") is None or shutil.which("npm") is None:
        problem = "node and npm are needed (apt-get install nodejs npm)"
    elif not (HERE / "node_modules" / "oidc-provider").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            problem = f"npm ci failed in {HERE}: {done.stderr[-2000:]}"
    if problem is None:
        return
    if os.environ.get(OIDC_ENV) == "1":
        pytest.fail(f"{OIDC_ENV}=1 but {problem}", pytrace=False)
    pytest.skip(f"OpenID provider tests skipped: {problem}")


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A private key as a JWK, with its id and algorithm."""

    kid: str
    alg: str
    jwk: dict[str, Any]

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid, "RS256", _jwk(jwt.algorithms.RSAAlgorithm.to_jwk(key), kid, "RS256"))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(kid, "ES256", _jwk(jwt.algorithms.ECAlgorithm.to_jwk(key), kid, "ES256"))


def _jwk(text: str, kid: str, alg: str) -> dict[str, Any]:
    """PyJWT's JWK with an id, an algorithm and ``use: sig``, as providers publish them; its
    ``key_ops: ["sign"]`` dropped (published as is, it would forbid verifying)."""
    data = {k: v for k, v in json.loads(text).items() if k != "key_ops"}
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


# -- the provider ----------------------------------------------------------------------------


@dataclass
class Provider:
    """One oidc-provider process (restartable on the same port, hence the same issuer)."""

    workdir: Path
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:9/callback",)
    post_logout_redirect_uris: tuple[str, ...] = ("http://127.0.0.1:9/",)
    signed_userinfo: bool = False  # the client asks for userinfo as a signed JWT (ProConnect)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    keys: tuple[SigningKey, ...] = ()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / f"provider-{self.port}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def start(self, *keys: SigningKey) -> None:
        """Start with these keys (the first of each algorithm signs); wait until it listens."""
        assert self.process is None, "already running"
        self.keys = keys
        jwks_file = self.workdir / f"jwks-{self.port}.json"
        jwks_file.write_text(json.dumps({"keys": [k.jwk for k in keys]}), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(self.workdir)),
            "OIDC_PORT": str(self.port),
            "OIDC_JWKS_FILE": str(jwks_file),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": ",".join(self.redirect_uris),
            "OIDC_POST_LOGOUT_REDIRECT_URIS": ",".join(self.post_logout_redirect_uris),
            "OIDC_USERS": ",".join(USERS),
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_RESOURCE": RESOURCE,
            "OIDC_OTHER_RESOURCE": OTHER_RESOURCE,
            "OIDC_SHORT_RESOURCE": SHORT_RESOURCE,
            "OIDC_ES_RESOURCE": ES_RESOURCE,
            "OIDC_USERINFO_SIGNED": "1" if self.signed_userinfo else "",
        }
        log = (self.workdir / f"provider-{self.port}.log").open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            ["node", str(HERE / "provider.mjs")],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the OpenID provider stopped at start-up:\n{self.log}")
            try:
                self.discovery()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the OpenID provider did not answer in time:\n{self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *keys: SigningKey) -> None:
        """Stop, then start again (same port and issuer) with another key set."""
        self.stop()
        self.start(*keys)

    def discovery(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            f"{self.issuer}/.well-known/openid-configuration", timeout=5
        ) as answer:
            document: dict[str, Any] = json.load(answer)
        return document

    def jwks_reads(self) -> int:
        """How many times the key set was read since this process started."""
        with urllib.request.urlopen(f"{self.issuer}/test/jwks-reads", timeout=5) as answer:
            return int(json.load(answer)["reads"])

    # -- a user's tokens through the authorisation code flow ---------------------------------

    def token(self, login: str = "alice.martin", resource: str = RESOURCE) -> str:
        """A JWT access token for ``resource``, obtained by signing ``login`` in."""
        return self.tokens(login, resource)["access_token"]

    def tokens(self, login: str = "alice.martin", resource: str = RESOURCE) -> dict[str, Any]:
        """The token endpoint's answer after signing ``login`` in (pages driven over HTTP)."""
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(16)
        redirect_uri = self.redirect_uris[0]
        query = urllib.parse.urlencode(
            {
                "client_id": CLIENT_ID,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid email admin",
                "resource": resource,
                "state": state,
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        location = self.sign_in(f"{self.issuer}/auth?{query}", login)
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        assert params.get("state") == [state], location
        if "code" not in params:
            raise RuntimeError(f"the provider refused: {location}")
        return self._exchange(params["code"][0], verifier, redirect_uri)

    def sign_in(self, url: str, login: str) -> str:
        """Follow an authorisation request ``url`` through the provider's sign-in and consent
        pages as ``login`` (HTTP, no browser); return where the provider sends the browser back
        (the client's redirect URI, with the code and the state)."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
        for _ in range(12):  # sign-in page, consent page, then back to the client
            status, location, body = _open(opener, url)
            if location and any(location.startswith(uri) for uri in self.redirect_uris):
                return location
            if location:
                url = urllib.parse.urljoin(url, location)
                continue
            form = re.search(r'<form[^>]*action="([^"]+)"', body)
            assert status == 200 and form, f"unexpected page ({status}): {body[:500]}"
            prompt = re.search(r'name="prompt" value="(\w+)"', body)
            fields = {"prompt": prompt.group(1) if prompt else ""}
            if fields["prompt"] == "login":
                fields |= {"login": login, "password": "any"}
            url = urllib.parse.urljoin(url, form.group(1))
            status, location, body = _open(opener, url, fields)
            url = urllib.parse.urljoin(url, location)
        raise RuntimeError("the sign-in did not come back to the client")

    def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        request = urllib.request.Request(
            f"{self.issuer}/token",
            data=urllib.parse.urlencode(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                }
            ).encode(),
            headers={"Authorization": f"Basic {basic}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            tokens: dict[str, Any] = json.load(answer)
        return tokens


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(
    opener: urllib.request.OpenerDirector, url: str, form: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, Location, body) of one request, redirects not followed."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(url, data=data, timeout=10) as answer:
            return answer.status, answer.headers.get("Location", ""), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", ""), exc.read().decode()


@contextmanager
def running_provider(workdir: Path, *keys: SigningKey, **options: Any) -> Iterator[Provider]:
    """A started provider, stopped at the end."""
    need_node()
    provider = Provider(workdir, **options)
    provider.start(*keys)
    try:
        yield provider
    finally:
        provider.stop()
