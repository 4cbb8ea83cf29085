// A real OpenID Connect provider for the tests (the oidc-provider package), configured by the
// environment; tests/support/oidc_provider.py starts, restarts and stops it.
//
//   OIDC_PORT           port to listen on (127.0.0.1); the issuer is http://127.0.0.1:<port>
//   OIDC_JWKS_FILE      a JSON key set with private keys; the first key of an algorithm signs
//                       (restart with another file to rotate the keys)
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS, OIDC_POST_LOGOUT_REDIRECT_URIS
//                       the one client (confidential, authorisation code with PKCE S256)
//   OIDC_USERS          comma-separated logins the provider knows (sub = login)
//   OIDC_AUDIENCE       the audience of JWT access tokens for the resource OIDC_RESOURCE
//   OIDC_RESOURCE       resource indicator of the administration API (the default resource)
//   OIDC_OTHER_RESOURCE another API's resource indicator (audience "other-api")
//   OIDC_SHORT_RESOURCE the administration API again, with access tokens of 2 seconds
//   OIDC_ES_RESOURCE    the administration API again, its access tokens signed with ES256
//   OIDC_USERINFO_SIGNED  non-empty: the client's userinfo answers are JWTs signed RS256
//   OIDC_TTL            seconds access and ID tokens live (default 600)
//
// Sign-in is oidc-provider's development interaction pages (any password; the login must be
// one of OIDC_USERS). Prints "ready <issuer>" once listening.
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const env = process.env;
const port = Number(env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const jwks = JSON.parse(readFileSync(env.OIDC_JWKS_FILE, 'utf8'));
const users = new Set((env.OIDC_USERS || '').split(',').filter(Boolean));
const ttl = Number(env.OIDC_TTL || 600);
const list = (value) => (value || '').split(',').filter(Boolean);

const resources = {
  [env.OIDC_RESOURCE]: { audience: env.OIDC_AUDIENCE, ttl },
  [env.OIDC_OTHER_RESOURCE]: { audience: 'other-api', ttl },
  [env.OIDC_SHORT_RESOURCE]: { audience: env.OIDC_AUDIENCE, ttl: 2 },
  [env.OIDC_ES_RESOURCE]: { audience: env.OIDC_AUDIENCE, ttl, alg: 'ES256' },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env.OIDC_CLIENT_ID,
      client_secret: env.OIDC_CLIENT_SECRET,
      redirect_uris: list(env.OIDC_REDIRECT_URIS),
      post_logout_redirect_uris: list(env.OIDC_POST_LOGOUT_REDIRECT_URIS),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...(env.OIDC_USERINFO_SIGNED ? { userinfo_signed_response_alg: 'RS256' } : {}),
    },
  ],
  jwks,
  cookies: { keys: ['tests-only-cookie-key-0123456789'] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl,
    IdToken: ttl,
    Session: 3600,
    Interaction: 600,
    Grant: 3600,
  },
  async findAccount(ctx, id) {
    if (!users.has(id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: id };
      },
    };
  },
  // The development pages grant every scope and resource asked for on "Continue".
  features: {
    devInteractions: { enabled: true },
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The administration API's access token when the scope "admin" is asked for; else an
      // access token for the userinfo endpoint (the console's sign-in).
      defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        const scope = ctx.oidc.params?.scope || '';
        return scope.split(' ').includes('admin') ? env.OIDC_RESOURCE : undefined;
      },
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        const server = resources[indicator];
        if (!server) throw new errors.InvalidTarget();
        return {
          scope: 'admin',
          audience: server.audience,
          accessTokenTTL: server.ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: server.alg || 'RS256' } },
        };
      },
    },
  },
});

// How many times the key set was read: GET /test/jwks-reads (the tests count the service's
// reads with it; not part of the provider's protocol).
let jwksReads = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') jwksReads += 1;
  if (ctx.path === '/test/jwks-reads') {
    ctx.body = { reads: jwksReads };
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
