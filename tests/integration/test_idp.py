# SPDX-License-Identifier: Apache-2.0
"""The local IdP (tests/idp/skidp.py) speaks Scalekit's protocol, checked over HTTP and with the
official Node SDK. Run: /usr/bin/python3 -m pytest -q tests/integration/test_idp.py
"""
import base64
import concurrent.futures
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "lib"))

from idp import IdP, IdPError  # noqa: E402

SDK_DIR = TESTS / "sdk"
REDIRECT = "http://localhost:8080/callback"
CLIENT = "skc_demo"
SECRET = "demo-secret"


# ---------------------------------------------------------------------------------------------
# Fixtures: one IdP for the module (key generation is the slow part), reset before each test
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    # reuse_keys=False: this one always makes its keys and CA, so first start is tested.
    with IdP(auto_login=True, reuse_keys=False) as idp:
        yield idp


@pytest.fixture(autouse=True)
def fresh(request):
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()


@pytest.fixture(params=["http", "https"])
def listener(request, server):
    """(base URL, requests verify setting) of one listener."""
    if request.param == "https":
        return server.https_url, server.ca
    return server.url, True


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def half_hash(value):
    return b64u(hashlib.sha256(value.encode()).digest()[:16])


def pkce():
    verifier = b64u(os.urandom(32))
    return verifier, b64u(hashlib.sha256(verifier.encode()).digest())


def jwt_parts(token):
    head, body, sig = token.split(".")
    return json.loads(b64u_decode(head)), json.loads(b64u_decode(body)), b64u_decode(sig)


def verify_jwt(token, jwks):
    """RS256 verification with `cryptography` against a JWKS document; returns the claims."""
    header, claims, sig = jwt_parts(token)
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    n = int.from_bytes(b64u_decode(jwk["n"]), "big")
    e = int.from_bytes(b64u_decode(jwk["e"]), "big")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    signing_input = token.rsplit(".", 1)[0].encode()
    key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())   # raises if bad
    return claims


def authorize(sess, base, verify=True, **params):
    query = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
             "scope": "openid profile email offline_access"}
    query.update({k: v for k, v in params.items() if v is not None})
    return sess.get(base + "/oauth/authorize", params=query, allow_redirects=False,
                    verify=verify, timeout=10)


def callback_params(resp):
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    query = urllib.parse.urlsplit(location).query
    return {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}


def token_request(base, verify=True, **form):
    form.setdefault("client_id", CLIENT)
    form.setdefault("client_secret", SECRET)
    return requests.post(base + "/oauth/token", data=form, verify=verify, timeout=10)


def exchange(base, code, verifier, verify=True, **extra):
    return token_request(base, verify, grant_type="authorization_code", code=code,
                         redirect_uri=REDIRECT, code_verifier=verifier, **extra)


def sign_in(base, verify=True, sess=None, **params):
    """Authorize with PKCE (auto-login) and exchange the code; returns (tokens, session)."""
    sess = sess or requests.Session()
    verifier, challenge = pkce()
    cb = callback_params(authorize(sess, base, verify, code_challenge=challenge,
                                   code_challenge_method="S256", **params))
    r = exchange(base, cb["code"], verifier, verify)
    assert r.status_code == 200, r.text
    return r.json(), sess


def refresh(base, refresh_token, verify=True):
    return token_request(base, verify, grant_type="refresh_token", refresh_token=refresh_token)


def jwks(base, verify=True):
    return requests.get(base + "/keys", verify=verify, timeout=10).json()


# ---------------------------------------------------------------------------------------------
# Discovery and keys
# ---------------------------------------------------------------------------------------------

def test_discovery_and_jwks_shape(server, listener):
    base, verify = listener
    doc = requests.get(base + "/.well-known/openid-configuration", verify=verify).json()
    assert doc["issuer"] == base
    assert doc["authorization_endpoint"] == base + "/oauth/authorize"
    assert doc["token_endpoint"] == base + "/oauth/token"
    assert doc["jwks_uri"] == base + "/keys"
    assert doc["end_session_endpoint"] == base + "/oidc/logout"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_post"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        doc["grant_types_supported"])
    assert "code" in doc["response_types_supported"]
    assert "openid" in doc["scopes_supported"]

    r = requests.get(base + "/keys", verify=verify)
    assert r.headers["Content-Type"] == "application/json"
    assert "max-age=" in r.headers["Cache-Control"]
    keys = r.json()["keys"]
    assert len(keys) == 1
    assert set(keys[0]) == {"kty", "kid", "use", "alg", "n", "e"}
    assert keys[0]["kty"] == "RSA" and keys[0]["use"] == "sig" and keys[0]["alg"] == "RS256"
    assert keys[0]["kid"].startswith("snk_") and keys[0]["e"] == "AQAB"
    assert len(b64u_decode(keys[0]["n"])) == 256           # RSA 2048


def test_state_dir_is_readable_by_others(server):
    assert os.stat(server.state_dir).st_mode & 0o777 == 0o755
    assert os.stat(server.ca).st_mode & 0o777 == 0o644
    assert server.ca == os.path.join(server.state_dir, "ca.pem")


# ---------------------------------------------------------------------------------------------
# Authorization code flow
# ---------------------------------------------------------------------------------------------

def test_code_flow_with_pkce(server, listener):
    base, verify = listener
    sess = requests.Session()
    verifier, challenge = pkce()
    r = authorize(sess, base, verify, state="st a/te+=?", nonce="n-0S6", code_challenge=challenge,
                  code_challenge_method="S256")
    assert "skidp_session" in r.cookies and "HttpOnly" in r.headers["Set-Cookie"]
    assert "state=st%20a%2Fte%2B%3D%3F" in r.headers["Location"]      # RFC 3986 encoding
    cb = callback_params(r)
    assert cb["state"] == "st a/te+=?"
    resp = exchange(base, cb["code"], verifier, verify)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    tok = resp.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 299
    assert tok["scope"] == "openid profile email offline_access"
    assert tok["refresh_token"]

    keys = jwks(base, verify)
    idc = verify_jwt(tok["id_token"], keys)
    assert idc["iss"] == base and idc["aud"] == [CLIENT] and idc["azp"] == CLIENT
    assert idc["sub"] == "usr_demo001" and idc["oid"] == "org_demo"
    assert idc["sid"].startswith("ses_") and idc["amr"][0].startswith("conn_")
    assert idc["email"] == "ada@example.com" and idc["email_verified"] is True
    assert (idc["name"], idc["given_name"], idc["family_name"]) == ("Ada Lovelace", "Ada",
                                                                   "Lovelace")
    assert idc["nonce"] == "n-0S6" and idc["client_id"] == CLIENT
    assert idc["at_hash"] == half_hash(tok["access_token"])
    assert idc["c_hash"] == half_hash(cb["code"])
    assert idc["exp"] - idc["iat"] == 3600

    acc = verify_jwt(tok["access_token"], keys)
    assert acc["iss"] == base and acc["aud"] == [CLIENT] and acc["sub"] == "usr_demo001"
    assert acc["sid"] == idc["sid"] and acc["jti"].startswith("tkn_")
    assert acc["exp"] - acc["iat"] == 299 and acc["nbf"] == acc["iat"]
    assert acc["roles"] == ["admin"] and acc["permissions"] == ["invoices:read", "invoices:write"]
    assert acc["scope"] == tok["scope"] and acc["client_id"] == CLIENT
    assert "xoid" in acc and "xuid" in acc and "email" not in acc


def test_no_refresh_token_without_offline_access(server):
    tok, _ = sign_in(server.url, scope="openid email")
    assert "refresh_token" not in tok and tok["scope"] == "openid email"


def test_code_reuse_and_bad_exchanges_are_refused(server):
    base = server.url
    verifier, challenge = pkce()
    sess = requests.Session()

    def fresh_code(**extra):
        return callback_params(authorize(sess, base, code_challenge=challenge,
                                         code_challenge_method="S256", **extra))["code"]

    code = fresh_code()
    assert exchange(base, code, verifier).status_code == 200
    r = exchange(base, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    r = exchange(base, fresh_code(), pkce()[0])                       # wrong verifier
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = token_request(base, grant_type="authorization_code", code=fresh_code(),
                      redirect_uri=REDIRECT)                          # missing verifier
    assert r.json()["error"] == "invalid_grant"
    r = token_request(base, grant_type="authorization_code", code=fresh_code(),
                      redirect_uri=REDIRECT + "2", code_verifier=verifier)
    assert r.json()["error"] == "invalid_grant"
    r = exchange(base, fresh_code(), verifier, client_secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert set(r.json()) == {"error", "error_description"}
    r = requests.post(base + "/oauth/token", auth=(CLIENT, SECRET),
                      data={"grant_type": "authorization_code", "code": fresh_code(),
                            "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"   # no client_secret_basic
    r = token_request(base, grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"

    server.lifetimes(code=0)
    code = fresh_code()
    time.sleep(1.1)
    assert exchange(base, code, verifier).json()["error"] == "invalid_grant"   # too old


def test_authorize_request_errors(server):
    base = server.url
    sess = requests.Session()
    r = authorize(sess, base, client_id="nobody")
    assert r.status_code == 400 and "text/html" in r.headers["Content-Type"]
    for bad in ("http://localhost:8080/cb?x=1", "http://evil.example/cb", "ftp://127.0.0.1/cb",
                "http://127.0.0.1/" + "a" * 300, "http://localhost:8080/cb#frag"):
        r = authorize(sess, base, redirect_uri=bad)
        assert r.status_code == 400 and "<html" in r.text, bad
        assert "Location" not in r.headers

    def error_of(**params):
        cb = callback_params(authorize(sess, base, state="s1", **params))
        assert cb["state"] == "s1" and cb["error_description"]
        return cb["error"]

    assert error_of(scope="profile email") == "invalid_scope"
    assert error_of(response_type="token") == "unsupported_response_type"
    assert error_of(code_challenge=pkce()[1], code_challenge_method="plain") == "invalid_request"
    assert error_of(code_challenge=pkce()[1]) == "invalid_request"
    assert error_of(prompt="none login") == "invalid_request"
    assert sess.get(base + "/oauth/authorize?client_id=a&client_id=b").status_code == 400


def test_sign_in_page_and_form_post(server):
    server.set_auto_login(False)
    base = server.url
    sess = requests.Session()
    r = authorize(sess, base, state="xyz", nonce="nn", login_hint="hint@example.com",
                  organization_id="org_acme")
    assert r.status_code == 200
    assert "<title>Sign in \u2014 Local Scalekit</title>" in r.text
    assert 'name="email" value="hint@example.com"' in r.text
    assert 'name="name"' in r.text and 'id="signin"' in r.text and ">Sign in</button>" in r.text
    assert 'action="/oauth/authorize"' in r.text and 'value="org_acme"' in r.text

    # Submit the form the way a browser would: every hidden field plus what was typed.
    fields = {k: html.unescape(v) for k, v in
              re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text)}
    fields.update(email="grace@example.com", name="Grace Hopper", action="signin")
    r = sess.post(base + "/oauth/authorize", data=fields, allow_redirects=False)
    cb = callback_params(r)
    assert cb["state"] == "xyz"
    tok = exchange(base, cb["code"], None).json()
    idc = jwt_parts(tok["id_token"])[1]
    assert (idc["email"], idc["name"], idc["given_name"]) == ("grace@example.com",
                                                             "Grace Hopper", "Grace")
    assert idc["oid"] == "org_acme" and idc["nonce"] == "nn"

    fields["action"] = "deny"
    cb = callback_params(sess.post(base + "/oauth/authorize", data=fields, allow_redirects=False))
    assert cb["error"] == "access_denied" and cb["state"] == "xyz"

    log = [e for e in server.log() if e["path"] == "/oauth/authorize"]
    assert log[0]["query"]["login_hint"] == ["hint@example.com"]
    assert log[0]["query"]["organization_id"] == ["org_acme"]


def test_prompt_none_needs_a_session(server):
    base = server.url
    sess = requests.Session()
    cb = callback_params(authorize(sess, base, prompt="none", state="p"))
    assert (cb["error"], cb["state"]) == ("login_required", "p") and "code" not in cb
    tok, sess = sign_in(base, sess=sess)
    sid = jwt_parts(tok["id_token"])[1]["sid"]
    server.set_auto_login(False)           # a silent sign-in must not need the page
    cb = callback_params(authorize(sess, base, prompt="none"))
    tok2 = exchange(base, cb["code"], None).json()
    assert jwt_parts(tok2["id_token"])[1]["sid"] == sid

    r = authorize(sess, base, prompt="login")            # forces the page even with a session
    assert r.status_code == 200 and "Sign in" in r.text


# ---------------------------------------------------------------------------------------------
# Refresh, logout, revoke, client credentials
# ---------------------------------------------------------------------------------------------

def test_refresh_rotation(server, listener):
    base, verify = listener
    tok, _ = sign_in(base, verify)
    sid = jwt_parts(tok["id_token"])[1]["sid"]
    r = refresh(base, tok["refresh_token"], verify)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["refresh_token"] != tok["refresh_token"] and new["expires_in"] == 299
    keys = jwks(base, verify)
    assert verify_jwt(new["id_token"], keys)["sid"] == sid
    assert verify_jwt(new["access_token"], keys)["sid"] == sid
    newer = refresh(base, new["refresh_token"], verify).json()
    assert newer["refresh_token"] not in (tok["refresh_token"], new["refresh_token"])

    r = refresh(base, tok["refresh_token"], verify)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # Reuse of a rotated token means two refreshes raced: the session is ended.
    assert refresh(base, newer["refresh_token"], verify).json()["error"] == "invalid_grant"
    stats = server.stats()["refresh_tokens"]
    assert stats["issued"] == 3 and stats["used"] == 2 and stats["refused"] == 2


def test_racing_refreshes_end_the_session(server):
    """Two refreshes with one token: one wins, the loser's reuse ends the session (protocol)."""
    tok, _ = sign_in(server.url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: refresh(server.url, tok["refresh_token"]), range(2)))
    assert sorted(r.status_code for r in results) == [200, 400]
    winner = next(r for r in results if r.status_code == 200).json()
    assert refresh(server.url, winner["refresh_token"]).json()["error"] == "invalid_grant"


def test_logout_ends_the_session(server):
    base = server.url
    tok, sess = sign_in(base)
    r = sess.get(base + "/oidc/logout", allow_redirects=False, params={
        "id_token_hint": tok["id_token"], "post_logout_redirect_uri": "http://localhost:8080/",
        "state": "b y"})
    assert r.status_code == 302
    assert r.headers["Location"] == "http://localhost:8080/?state=b%20y"
    assert "skidp_session=;" in r.headers["Set-Cookie"]
    assert refresh(base, tok["refresh_token"]).json()["error"] == "invalid_grant"
    assert callback_params(authorize(sess, base, prompt="none"))["error"] == "login_required"

    tok, sess = sign_in(base)          # without a post-logout URI: a page, cookie alone is enough
    r = sess.get(base + "/oidc/logout")
    assert r.status_code == 200 and "Signed out" in r.text
    assert refresh(base, tok["refresh_token"]).json()["error"] == "invalid_grant"

    r = sess.get(base + "/oidc/logout", params={"id_token_hint": "not.a.token"})
    assert r.status_code == 400 and "text/html" in r.headers["Content-Type"]
    r = sess.get(base + "/oidc/logout", params={"post_logout_redirect_uri": "http://evil.example/"})
    assert r.status_code == 400


def test_client_credentials_and_session_revoke(server):
    base = server.url
    r = token_request(base, grant_type="client_credentials", scope="read:a write:b")
    assert r.status_code == 200, r.text
    m2m = r.json()
    assert m2m["expires_in"] == 3600 and m2m["token_type"] == "Bearer"
    claims = verify_jwt(m2m["access_token"], jwks(base))
    # As the M2M quickstart prints it: no aud (none was registered for the client).
    assert claims["sub"] == CLIENT and "aud" not in claims and claims["iss"] == base
    assert claims["client_id"] == CLIENT
    assert claims["scopes"] == ["read:a", "write:b"] and claims["jti"].startswith("tkn_")
    assert claims["exp"] - claims["iat"] == 3600 and "oid" in claims and "nbf" in claims

    tok, sess = sign_in(base)
    sid = jwt_parts(tok["id_token"])[1]["sid"]
    url = "%s/api/v1/sessions/%s/revoke" % (base, sid)
    assert requests.post(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert requests.post(url).status_code == 401
    user_token = {"Authorization": "Bearer " + tok["access_token"]}
    assert requests.post(url, headers=user_token).status_code == 401
    r = requests.post(url, headers={"Authorization": "Bearer " + m2m["access_token"]})
    assert r.status_code == 200 and r.json()["session_id"] == sid
    assert r.json()["status"] == "revoked"
    assert refresh(base, tok["refresh_token"]).json()["error"] == "invalid_grant"
    assert callback_params(authorize(sess, base, prompt="none"))["error"] == "login_required"
    r = requests.post(base + "/api/v1/sessions/ses_nope/revoke",
                      headers={"Authorization": "Bearer " + m2m["access_token"]})
    assert r.status_code == 404


def test_extra_client_and_user_claims(server):
    server.add_client("skc_other", "other-secret")
    server.set_user(sub="usr_grace", email="grace@example.com", name="Grace Hopper",
                    roles=["viewer"], permissions=["docs:read"], picture="https://x/p.png",
                    access_token_extra={"email": "grace@example.com"}, team="blue")
    sess = requests.Session()
    verifier, challenge = pkce()
    cb = callback_params(authorize(sess, server.url, client_id="skc_other",
                                   code_challenge=challenge, code_challenge_method="S256"))
    r = exchange(server.url, cb["code"], verifier, client_id="skc_other",
                 client_secret="other-secret")
    tok = r.json()
    idc = jwt_parts(tok["id_token"])[1]
    acc = jwt_parts(tok["access_token"])[1]
    assert idc["aud"] == ["skc_other"] and idc["sub"] == "usr_grace" and idc["team"] == "blue"
    assert idc["picture"] == "https://x/p.png"
    assert acc["roles"] == ["viewer"] and acc["permissions"] == ["docs:read"]
    assert acc["email"] == "grace@example.com"
    assert exchange(server.url, cb["code"], verifier).status_code == 400   # other client's code


def test_lifetimes(server):
    server.lifetimes(access=5, id=7)
    tok, _ = sign_in(server.url)
    assert tok["expires_in"] == 5
    acc, idc = jwt_parts(tok["access_token"])[1], jwt_parts(tok["id_token"])[1]
    assert acc["exp"] - acc["iat"] == 5 and idc["exp"] - idc["iat"] == 7
    server.lifetimes(refresh=-1)
    tok, _ = sign_in(server.url)
    assert refresh(server.url, tok["refresh_token"]).json()["error"] == "invalid_grant"


# ---------------------------------------------------------------------------------------------
# Keys, minting, faults, log
# ---------------------------------------------------------------------------------------------

def test_rotate_keep_old_and_drop(server):
    first = server.keys()["current"]
    tok_old, _ = sign_in(server.url)
    kid = server.rotate(keep_old=True)
    assert kid != first and kid.startswith("snk_")
    assert [k["kid"] for k in jwks(server.url)["keys"]] == [first, kid]
    tok_new, _ = sign_in(server.url)
    assert jwt_parts(tok_new["access_token"])[0]["kid"] == kid
    verify_jwt(tok_old["access_token"], jwks(server.url))     # old tokens still verify

    kid2 = server.rotate(keep_old=False)
    assert [k["kid"] for k in jwks(server.url)["keys"]] == [kid2]
    assert server.keys() == {"current": kid2, "kids": [kid2]}
    with pytest.raises(StopIteration):
        verify_jwt(tok_new["access_token"], jwks(server.url))


def test_mint(server):
    keys = jwks(server.url)
    token = server.mint({"iss": "x", "aud": ["other"], "exp": 1})
    assert verify_jwt(token, keys) == {"iss": "x", "aud": ["other"], "exp": 1}
    token = server.mint({"aud": ["wrong"], "email": None}, base="access")
    claims = verify_jwt(token, keys)
    assert claims["aud"] == ["wrong"] and claims["iss"] == server.url
    assert claims["exp"] > time.time() and "sub" in claims
    token = server.mint({"exp": 5}, base="id")
    assert verify_jwt(token, keys)["exp"] == 5 and "at_hash" in verify_jwt(token, keys)

    header, _, sig = jwt_parts(server.mint({"a": 1}, sign="none"))
    assert header == {"alg": "none", "typ": "JWT"} and sig == b""
    header, _, _ = jwt_parts(server.mint({"a": 1}, header={"alg": "RS512", "typ": None}))
    assert header["alg"] == "RS512" and "typ" not in header
    with pytest.raises(Exception):
        verify_jwt(server.mint({"a": 1}, sign="bad"), keys)
    header = jwt_parts(server.mint({"a": 1}, sign="unknown"))[0]
    assert header["kid"] not in [k["kid"] for k in keys["keys"]]
    assert jwt_parts(server.mint({"a": 1}, sign="hs256"))[0]["alg"] == "HS256"

    old = server.keys()["current"]
    server.rotate()
    assert jwt_parts(server.mint({"a": 1}, kid=old))[0]["kid"] == old


def test_mint_sessions(server):
    """Token pairs of distinct users, as the code grant makes them: verified by the IdP's keys,
    one sid and sub per pair, the ID token bound to its access token (at_hash)."""
    keys = jwks(server.url)
    pairs = server.mint_sessions(3, start=7, prefix="usr_t")
    subs, sids = set(), set()
    for access, id_token in pairs:
        a, i = verify_jwt(access, keys), verify_jwt(id_token, keys)
        assert a["sub"] == i["sub"] and a["sid"] == i["sid"] and a["iss"] == server.url
        assert "offline_access" in a["scope"] and i["email"] == a["sub"] + "@bench.example"
        digest = hashlib.sha256(access.encode()).digest()
        assert i["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        subs.add(a["sub"])
        sids.add(a["sid"])
    assert subs == {"usr_t000007", "usr_t000008", "usr_t000009"} and len(sids) == 3
    with pytest.raises(Exception):
        server.mint_sessions(5001)


def test_idp_initiated_token(server):
    token = server.idp_initiated(connection_id="conn_1", organization_id="org_1",
                                 login_hint="a@b.c", relay_state="r")
    claims = verify_jwt(token, jwks(server.url))
    assert claims["aud"] == [CLIENT] and claims["iss"] == server.url
    assert 290 <= claims["exp"] - time.time() <= 301
    assert (claims["connection_id"], claims["organization_id"], claims["login_hint"],
            claims["relay_state"]) == ("conn_1", "org_1", "a@b.c", "r")


def test_fault_modes(server):
    keys_url = server.url + "/keys"
    server.fault("slow", delay=2.0, paths=["/keys"])
    t0 = time.monotonic()
    assert requests.get(keys_url).status_code == 200
    assert time.monotonic() - t0 >= 2.0
    t0 = time.monotonic()
    requests.get(server.url + "/.well-known/openid-configuration")       # other paths: no fault
    assert time.monotonic() - t0 < 1.5

    server.fault("500", count=2)
    assert requests.get(keys_url).status_code == 500
    assert token_request(server.url, grant_type="client_credentials").status_code == 500
    assert requests.get(keys_url).status_code == 200                      # count used up
    assert server.control("keys", method="GET")                           # controls never faulted

    server.fault("garbage", paths=["/oauth/token"])
    r = token_request(server.url, grant_type="client_credentials")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)

    server.fault("close", paths=["/keys"], count=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(keys_url)
    assert requests.get(keys_url).status_code == 200

    server.fault("hang", delay=1.0, paths=["/keys"], count=1)
    with pytest.raises(requests.ReadTimeout):
        requests.get(keys_url, timeout=0.3)
    server.fault("none")
    assert requests.get(keys_url).status_code == 200
    assert server.stats()["faults"] == {"slow": 1, "500": 2, "garbage": 1, "close": 1, "hang": 1}
    statuses = [e["status"] for e in server.log() if e["path"] == "/keys"]
    assert 500 in statuses and None in statuses                          # close: no answer


def test_request_log(server):
    tok, _ = sign_in(server.https_url, verify=server.ca)
    refresh(server.url, tok["refresh_token"])
    log = server.log()
    assert [(e["method"], e["path"], e["listener"]) for e in log] == [
        ("GET", "/oauth/authorize", "https"), ("POST", "/oauth/token", "https"),
        ("POST", "/oauth/token", "http")]
    auth, code, ref = log
    assert auth["query"]["client_id"] == [CLIENT] and auth["status"] == 302
    assert code["form"]["client_secret"] == SECRET and code["form"]["code_verifier"]
    assert ref["form"]["refresh_token"] == tok["refresh_token"] and ref["status"] == 200
    assert code["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert all(isinstance(e["t"], float) for e in log)
    server.clear_log()
    assert server.log() == []


def test_bad_input_never_crashes(server):
    base = server.url
    r = requests.post(base + "/oauth/token", data=b"\xff\xfe\x00garbage",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = requests.post(base + "/oauth/token", data="%%%&&&==", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (400, 401)
    r = requests.post(base + "/oauth/token", json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.get(base + "/oauth/authorize", params={"state": "x" * 40000})
    assert r.status_code == 400
    r = requests.post(base + "/oauth/token", data={"a": "x" * 100000})
    assert r.status_code == 400
    r = requests.post(base + "/oauth/token", data="&".join("f%d=1" % i for i in range(500)),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = token_request(base, grant_type="client_credentials", scope=["a", "b"])   # repeated
    assert r.status_code == 400
    assert requests.get(base + "/oauth/token").status_code == 405
    assert requests.get(base + "/nope").status_code == 404
    r = requests.post(base + "/_control/user", data="{not json")
    assert r.status_code == 400
    assert requests.get(base + "/keys").status_code == 200                 # still alive


def test_concurrent_keep_alive_load(server):
    """A few hundred requests from 16 threads over keep-alive connections, mixed endpoints."""
    def worker(i):
        with requests.Session() as s:
            for _ in range(15):
                assert s.get(server.url + "/keys").status_code == 200
                r = s.post(server.url + "/oauth/token", data={
                    "grant_type": "client_credentials", "client_id": CLIENT,
                    "client_secret": SECRET})
                assert r.status_code == 200
        return i

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert sorted(pool.map(worker, range(16))) == list(range(16))
    assert time.monotonic() - t0 < 20
    assert server.stats()["endpoints"]["/keys"] == 16 * 15


# ---------------------------------------------------------------------------------------------
# Process lifecycle
# ---------------------------------------------------------------------------------------------

def test_restart_keeps_ports_keys_and_ca(tmp_path):
    idp = IdP(state_dir=str(tmp_path / "state"), https=True)
    idp.start()
    try:
        url, https_url, kid = idp.url, idp.https_url, idp.keys()["current"]
        with open(idp.ca) as f:
            ca = f.read()
        idp.restart()
        assert (idp.url, idp.https_url) == (url, https_url)
        assert idp.keys()["current"] == kid
        with open(idp.ca) as f:
            assert f.read() == ca
        assert requests.get(https_url + "/keys", verify=idp.ca).status_code == 200
    finally:
        idp.stop()
    assert os.path.isdir(tmp_path / "state")          # a caller's state dir is kept
    idp.stop()                                         # idempotent


def test_http_only_and_clean_exits():
    with IdP(https=False, client_id="skc_x", client_secret="s3") as idp:
        assert idp.https_url is None and idp.ca is None
        r = token_request(idp.url, grant_type="client_credentials", client_id="skc_x",
                          client_secret="s3")
        assert r.status_code == 200
        state_dir = idp.state_dir
        proc = idp.proc
        requests.post(idp.url + "/_control/shutdown")
        assert proc.wait(5) == 0
    assert not os.path.exists(state_dir)               # a temp state dir is removed

    idp = IdP(https=False).start()
    proc = idp.proc
    idp.stop()
    assert proc.returncode == 0                        # SIGTERM is a clean exit


def test_start_failure_reports_stderr(server):
    taken = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(IdPError, match="Address already in use"):
        IdP(port=taken, https=False).start(timeout=5)


# ---------------------------------------------------------------------------------------------
# The official Node SDK against the IdP
# ---------------------------------------------------------------------------------------------

def ensure_sdk_installed():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are required for the SDK faithfulness test", pytrace=False)
    if not (SDK_DIR / "node_modules" / "@scalekit-sdk" / "node").is_dir():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.fail("npm ci failed in tests/sdk:\n" + r.stdout[-2000:] + r.stderr[-4000:],
                        pytrace=False)
    return node


def module_authorize_url(server, httpd_factory):
    """mod_scalekit's authorization URL for a location with every optional sign-in parameter (the
    values sdk_test.mjs gives the SDK)."""
    h = httpd_factory(idp=server, locations=(
        "<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
        "<Location /dashboard>\n AuthType Scalekit\n Require valid-user\n"
        " ScalekitLoginParams organization_id=org_b connection_id=conn_7 login_hint=a+b@example.com"
        " domain_hint=example.com provider=google prompt=login\n</Location>\n"))
    r = requests.get(h.url + "/dashboard/", allow_redirects=False)
    assert r.status_code == 302, r.status_code
    return r.headers["Location"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_official_node_sdk(server, scheme, httpd_factory):
    node = ensure_sdk_installed()
    base = server.https_url if scheme == "https" else server.url
    env = dict(os.environ, SKIDP_URL=base, SKIDP_CLIENT_ID=CLIENT, SKIDP_CLIENT_SECRET=SECRET,
               NODE_EXTRA_CA_CERTS=server.ca,
               MODULE_AUTHORIZE_URL=module_authorize_url(server, httpd_factory))
    r = subprocess.run([node, "sdk_test.mjs"], cwd=SDK_DIR, env=env, capture_output=True,
                       text=True, timeout=60)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SDK faithfulness: all steps passed" in r.stdout
    assert "PASS getAuthorizationUrl with sign-in parameters — same query as mod_scalekit" in r.stdout

    # What the SDK sent, as the IdP saw it.
    log = [e for e in server.log() if e["listener"] == scheme]
    code_exchange = next(e for e in log if e["form"].get("grant_type") == "authorization_code")
    assert set(code_exchange["form"]) == {"code", "redirect_uri", "grant_type", "client_id",
                                          "client_secret", "code_verifier"}
    assert code_exchange["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in code_exchange["headers"]
    assert code_exchange["headers"]["x-sdk-version"] == "Scalekit-Node/2.11.0"
    refreshes = [e for e in log if e["form"].get("grant_type") == "refresh_token"]
    assert set(refreshes[0]["form"]) == {"grant_type", "client_id", "client_secret",
                                         "refresh_token"}
    assert [e["path"] for e in log if e["method"] == "GET" and e["path"] == "/keys"]
    assert all(e["status"] is not None and e["status"] < 500 for e in log)


# ---------------------------------------------------------------------------------------------
# Token shapes as Scalekit's documentation prints them (tests/fixtures/scalekit-docs)
# ---------------------------------------------------------------------------------------------

SHAPES = TESTS / "fixtures" / "scalekit-docs"


def printed(name):
    return json.loads((SHAPES / (name + ".json")).read_text())


def test_machine_client_audience_and_custom_claims(server):
    base = server.url
    server.add_client("m2morg_1", "s1")
    server.add_client("m2morg_2", "s2", audience=["https://api.example.com"], oid="org_2",
                      custom_claims=[{"key": "environment", "value": "production"}])
    plain = verify_jwt(token_request(base, grant_type="client_credentials", client_id="m2morg_1",
                                     client_secret="s1").json()["access_token"], jwks(base))
    assert "aud" not in plain and plain["sub"] == plain["client_id"] == "m2morg_1"
    assert plain["scopes"] == []
    r = token_request(base, grant_type="client_credentials", client_id="m2morg_2",
                      client_secret="s2", scope="deploy:applications")
    claims = verify_jwt(r.json()["access_token"], jwks(base))
    assert claims["aud"] == ["https://api.example.com"] and claims["oid"] == "org_2"
    assert claims["environment"] == "production" and claims["scopes"] == ["deploy:applications"]
    with pytest.raises(IdPError):
        server.add_client("m2morg_3", "s3", custom_claims=[{"name": "x"}])


def test_mint_shape_as_printed(server):
    for name in ("m2m-access-token", "id-token", "access-token", "access-token-api-audience"):
        doc = printed(name)
        claims = jwt_parts(server.mint({}, shape=name))[1]
        want = dict(doc["claims"], **doc.get("custom_claims", {}))
        changed = {k for k in want if claims.get(k) != want[k]}
        assert changed <= {"iss", "iat", "nbf", "exp"}, (name, changed)
        assert set(claims) == set(want), name
        assert claims["iss"] == server.url and abs(claims["iat"] - time.time()) < 60
    assert "aud" not in jwt_parts(server.mint({}, shape="m2m-access-token"))[1]


def test_issued_tokens_take_the_documented_shapes(server):
    base = server.url
    server.set_shape(access="access-token", id="id-token", machine="m2m-access-token")
    tok, _ = sign_in(base, nonce="n-123", scope="openid profile email offline_access")
    access = verify_jwt(tok["access_token"], jwks(base))
    id_token = verify_jwt(tok["id_token"], jwks(base))
    # Every printed claim, the client the page names replaced by ours, sub and sid the session's.
    assert set(access) == set(printed("access-token")["claims"])
    assert access["aud"] == [CLIENT] and access["client_id"] == CLIENT
    assert access["xuid"] == "ext_usr_456" and access["scope"] == "openid profile email"
    assert set(id_token) == set(printed("id-token")["claims"]) | {"nonce"}
    assert id_token["aud"] == [CLIENT] and id_token["azp"] == CLIENT
    assert id_token["sub"] == access["sub"] and id_token["sid"] == access["sid"]
    assert id_token["at_hash"] == half_hash(tok["access_token"]) and id_token["nonce"] == "n-123"
    assert id_token["picture"] == "https://..." and id_token["locale"] == "en"
    # On refresh: a new ID token with at_hash, but neither c_hash nor nonce.
    again = refresh(base, tok["refresh_token"]).json()
    renewed = verify_jwt(again["id_token"], jwks(base))
    assert "c_hash" not in renewed and "nonce" not in renewed
    assert renewed["at_hash"] == half_hash(again["access_token"])
    # client_credentials: the printed shape, our client, no aud.
    server.add_client("m2morg_69038819013296423", "m-secret")
    m2m = verify_jwt(token_request(base, grant_type="client_credentials",
                                   client_id="m2morg_69038819013296423",
                                   client_secret="m-secret").json()["access_token"], jwks(base))
    assert set(m2m) == set(printed("m2m-access-token")["claims"])
    assert m2m["scopes"] == ["deploy:applications", "read:deployments"]
    server.set_shape(clear=True)
    tok, _ = sign_in(base)
    assert "xuid" in verify_jwt(tok["access_token"], jwks(base))        # the IdP's own again
    assert "locale" not in verify_jwt(tok["id_token"], jwks(base))
    with pytest.raises(IdPError):
        server.set_shape(id="../../etc/passwd")
