// Faithfulness check: the official Scalekit Node SDK (@scalekit-sdk/node 2.11.0) against the local
// IdP (tests/idp/skidp.py). If the SDK can sign in, validate, refresh and sign out against it,
// the IdP speaks the protocol the SDK speaks.
//
// Environment: SKIDP_URL (listener base URL, http or https; its /_control/ is used too),
// SKIDP_CLIENT_ID, SKIDP_CLIENT_SECRET. For https run node with NODE_EXTRA_CA_CERTS=<state dir>/ca.pem.
// The IdP must have auto-login on.
//
// Which SDK call hits which endpoint (read from node_modules/@scalekit-sdk/node/lib):
// MODULE_AUTHORIZE_URL (optional): mod_scalekit's authorization URL to compare with the SDK's.
//
//   getAuthorizationUrl(redirectUri, opts)     no request; builds ENV/oauth/authorize?response_type=code
//                                              &client_id&redirect_uri&scope&state&nonce&login_hint
//                                              &domain_hint&domain&connection_id&organization_id
//                                              &code_challenge&code_challenge_method&provider&prompt
//   authenticateWithCode(code, uri, {codeVerifier})  POST ENV/oauth/token (form: code, redirect_uri,
//                                              grant_type=authorization_code, client_id, client_secret,
//                                              code_verifier); the ID token is decoded, NOT verified
//   validateToken / validateAccessToken /      GET ENV/keys once per client instance (never refetched),
//   getIdpInitiatedLoginClaims                 then a local jose.jwtVerify (issuer/audience optional)
//   refreshAccessToken(rt)                     POST ENV/oauth/token (grant_type=refresh_token, client_id,
//                                              client_secret, refresh_token); needs refresh_token back
//   getClientAccessToken()                     POST ENV/oauth/token (grant_type=client_credentials)
//   getLogoutUrl({idTokenHint, postLogoutRedirectUri, state})  no request; ENV/oidc/logout?...
//   (session.revokeSession etc. use gRPC over HTTP/2, not the REST paths: not exercised here.)
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Scalekit } from '@scalekit-sdk/node';

const ENV = process.env.SKIDP_URL;
const CLIENT_ID = process.env.SKIDP_CLIENT_ID || 'skc_demo';
const CLIENT_SECRET = process.env.SKIDP_CLIENT_SECRET || 'demo-secret';
const REDIRECT_URI = 'http://localhost:8080/api/auth/callback';
const AFTER_LOGOUT = 'http://localhost:8080/';

const b64url = (buf) => buf.toString('base64url');
const decode = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

function pass(step, detail = '') {
  console.log(`PASS ${step}${detail ? ' — ' + detail : ''}`);
}

async function control(path, payload) {
  const res = await fetch(`${ENV}/_control/${path}`, {
    method: payload === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  assert.equal(res.status, 200, `control ${path}`);
  return res.json();
}

// Follow the authorization URL the way a browser would, stopping at the redirect to the app.
async function authorize(url) {
  const res = await fetch(url, { redirect: 'manual' });
  assert.equal(res.status, 302, 'authorize answers with a redirect');
  return new URL(res.headers.get('location'));
}

async function main() {
  assert.ok(ENV, 'SKIDP_URL is required');
  const sk = new Scalekit(ENV, CLIENT_ID, CLIENT_SECRET);

  // 1. Authorization URL with state, nonce, PKCE and offline_access.
  const state = b64url(crypto.randomBytes(16));
  const nonce = b64url(crypto.randomBytes(16));
  const codeVerifier = b64url(crypto.randomBytes(32));
  const codeChallenge = b64url(crypto.createHash('sha256').update(codeVerifier).digest());
  const authUrl = sk.getAuthorizationUrl(REDIRECT_URI, {
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    state, nonce, codeChallenge, codeChallengeMethod: 'S256',
    loginHint: 'ada@example.com',
  });
  assert.ok(authUrl.startsWith(`${ENV}/oauth/authorize?response_type=code&client_id=`));
  pass('getAuthorizationUrl', authUrl.split('?')[0]);

  // 1b. The optional sign-in parameters (Scalekit's implement-login guide): the SDK's names are the
  //     ones mod_scalekit sends. MODULE_AUTHORIZE_URL, when set, is the module's authorization URL
  //     for a location with every one of them (ScalekitLoginParams): the SDK, given the same values
  //     (and the same state, nonce, PKCE challenge and callback), must build the same query, byte for
  //     byte: the same names, order and escaping.
  const signinParams = {
    organizationId: 'org_b', connectionId: 'conn_7', loginHint: 'a+b@example.com',
    domainHint: 'example.com', provider: 'google', prompt: 'login',
  };
  const withParams = new URL(sk.getAuthorizationUrl(REDIRECT_URI, {
    scopes: ['openid'], state, nonce, codeChallenge, codeChallengeMethod: 'S256', ...signinParams,
  }));
  assert.deepEqual([...withParams.searchParams.keys()], [
    'response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce', 'login_hint',
    'domain_hint', 'domain', 'connection_id', 'organization_id', 'code_challenge',
    'code_challenge_method', 'provider', 'prompt']);
  assert.equal(withParams.searchParams.get('login_hint'), 'a+b@example.com');
  const viaIdp = await authorize(withParams.href);
  assert.ok(viaIdp.searchParams.get('code'), 'the IdP accepts every parameter');
  if (process.env.MODULE_AUTHORIZE_URL) {
    const mod = new URL(process.env.MODULE_AUTHORIZE_URL);
    const m = (name) => mod.searchParams.get(name);
    const sdkUrl = new URL(sk.getAuthorizationUrl(m('redirect_uri'), {
      scopes: m('scope').split(' '), state: m('state'), nonce: m('nonce'),
      codeChallenge: m('code_challenge'), codeChallengeMethod: m('code_challenge_method'),
      ...signinParams,
    }));
    assert.equal(sdkUrl.pathname, mod.pathname);
    assert.equal(sdkUrl.search, mod.search, 'module and SDK build the same authorization query');
    pass('getAuthorizationUrl with sign-in parameters', 'same query as mod_scalekit');
  } else {
    pass('getAuthorizationUrl with sign-in parameters');
  }

  // 2. Sign in (auto-login) and pick the code off the callback redirect.
  const callback = await authorize(authUrl);
  assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT_URI);
  assert.equal(callback.searchParams.get('state'), state, 'state comes back untouched');
  const code = callback.searchParams.get('code');
  assert.ok(code, 'callback carries a code');
  pass('authorize redirect', 'code and state on the callback');

  // 3. Code exchange.
  const auth = await sk.authenticateWithCode(code, REDIRECT_URI, { codeVerifier });
  assert.ok(auth.accessToken && auth.idToken && auth.refreshToken, 'tokens returned');
  assert.equal(auth.expiresIn, 299);
  assert.equal(auth.user.email, 'ada@example.com');
  assert.equal(auth.user.id, 'usr_demo001');
  assert.equal(auth.user.emailVerified, true);
  const idClaims = decode(auth.idToken);
  assert.equal(idClaims.nonce, nonce);
  assert.equal(idClaims.iss, ENV);
  assert.deepEqual(idClaims.aud, [CLIENT_ID]);
  assert.match(idClaims.sid, /^ses_/);
  pass('authenticateWithCode', `user ${auth.user.id} <${auth.user.email}>`);

  // 4. Access token validation against /keys, with issuer and audience enforced.
  const claims = await sk.validateToken(auth.accessToken, { issuer: ENV, audience: [CLIENT_ID] });
  assert.equal(claims.sub, 'usr_demo001');
  assert.equal(claims.client_id, CLIENT_ID);
  assert.match(claims.jti, /^tkn_/);
  assert.ok(Array.isArray(claims.roles) && Array.isArray(claims.permissions));
  assert.equal(typeof claims.scope, 'string');
  assert.ok(await sk.validateAccessToken(auth.idToken, { issuer: ENV, audience: [CLIENT_ID] }),
    'the ID token verifies too');
  assert.equal(await sk.validateAccessToken(auth.accessToken, { issuer: ENV + '/other' }), false,
    'a wrong issuer is refused');
  assert.equal(await sk.validateAccessToken(auth.accessToken, { audience: ['someone-else'] }), false,
    'a wrong audience is refused');
  pass('validateToken', `sub ${claims.sub}, roles ${JSON.stringify(claims.roles)}`);

  // 5. Refresh: a new pair, and the old refresh token is refused afterwards (rotation).
  const refreshed = await sk.refreshAccessToken(auth.refreshToken);
  assert.ok(refreshed.accessToken && refreshed.refreshToken);
  assert.notEqual(refreshed.refreshToken, auth.refreshToken, 'refresh token rotated');
  const again = await sk.validateToken(refreshed.accessToken, { issuer: ENV, audience: [CLIENT_ID] });
  assert.equal(again.sid, claims.sid, 'session id survives a refresh');
  pass('refreshAccessToken', 'rotated');
  await assert.rejects(sk.refreshAccessToken(auth.refreshToken), /Failed to refresh token/);
  pass('refresh rotation', 'old refresh token refused');

  // Reusing the old token ended the session (a race between two refreshes logs the user out), so
  // sign in afresh for the logout step.
  const login2 = await authorize(sk.getAuthorizationUrl(REDIRECT_URI, {
    scopes: ['openid', 'email', 'offline_access'], state: 's2', prompt: 'login',
  }));
  const auth2 = await sk.authenticateWithCode(login2.searchParams.get('code'), REDIRECT_URI);
  assert.ok(auth2.refreshToken);

  // 6. Client credentials (management API token) and required scopes.
  const m2m = await sk.getClientAccessToken();
  // As the M2M quickstart prints it: no aud (the API client has no registered audience).
  const m2mClaims = await sk.validateToken(m2m, { issuer: ENV });
  assert.equal(m2mClaims.sub, CLIENT_ID);
  assert.equal(m2mClaims.aud, undefined);
  assert.ok(Array.isArray(m2mClaims.scopes));
  pass('getClientAccessToken', `sub ${m2mClaims.sub}`);

  // 7. IdP-initiated login token.
  const { token: idpToken } = await control('idp_initiated', {
    connection_id: 'conn_123', organization_id: 'org_123', login_hint: 'grace@example.com',
    relay_state: 'rs-1',
  });
  const idpClaims = await sk.getIdpInitiatedLoginClaims(idpToken, { issuer: ENV, audience: [CLIENT_ID] });
  assert.equal(idpClaims.connection_id, 'conn_123');
  assert.equal(idpClaims.organization_id, 'org_123');
  assert.equal(idpClaims.login_hint, 'grace@example.com');
  assert.equal(idpClaims.relay_state, 'rs-1');
  pass('getIdpInitiatedLoginClaims');

  // 8. Logout URL: following it answers 302 to the post-logout URI with the state, and the
  //    session's refresh token stops working.
  const logoutUrl = sk.getLogoutUrl({
    idTokenHint: auth2.idToken, postLogoutRedirectUri: AFTER_LOGOUT, state: 'bye',
  });
  assert.ok(logoutUrl.startsWith(`${ENV}/oidc/logout?id_token_hint=`));
  const out = await fetch(logoutUrl, { redirect: 'manual' });
  assert.equal(out.status, 302);
  assert.equal(out.headers.get('location'), `${AFTER_LOGOUT}?state=bye`);
  pass('getLogoutUrl', `302 to ${out.headers.get('location')}`);
  await assert.rejects(sk.refreshAccessToken(auth2.refreshToken), /Failed to refresh token/);
  pass('logout revokes', 'refresh token refused after logout');

  console.log('SDK faithfulness: all steps passed');
}

main().catch((err) => {
  console.error('FAIL', err && err.stack ? err.stack : err);
  process.exit(1);
});
