# SPDX-License-Identifier: Apache-2.0
"""Security (issue 6): the attack catalogue against a real httpd with the module and the local
IdP. Each test names the protection it proves and fails when that protection is removed.

What other files already prove is not repeated here: the open-redirect corpus through return_to
(test_open_redirect.py), tokens of another audience/issuer/expired/unsigned in a cookie and a
replayed callback with the same cookies (test_signin.py), an untrusted https IdP at the token
endpoint (test_signin.py), a root-only file: secret (test_config.py), CR/LF in a claim header
(test_authz_api.py). This file extends them."""
import base64
import hashlib
import json
import os
import re
import socket
import time
import urllib.parse as up

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from httpd import Httpd
from test_open_redirect import browser_target
from test_signin import endpoint_calls, expire_access_cookie, q, set_cookies, signin

API = {"Accept": "application/json"}                 # not a navigation: 401, never a redirect
NAV = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
BIG_HEADERS = "LimitRequestFieldSize 65536\nLimitRequestLine 65536\n"

# Prints, as JSON, the raw bytes (hex) of the variables an application could take for the user.
ENVDUMP_CGI = r'''#!/usr/bin/python3
import json, os
keep = lambda k: k in (b"REMOTE_USER", b"AUTH_TYPE") or k.startswith((b"SCALEKIT_", b"HTTP_"))
print("Content-Type: application/json\n")
print(json.dumps({k.decode("latin-1"): v.hex() for k, v in os.environb.items() if keep(k)}))
'''


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def env_of(r):
    """The envdump CGI's answer: name -> raw bytes."""
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return {k: bytes.fromhex(v) for k, v in r.json().items()}


def with_envdump(h):
    cgi = h.root / "cgi-bin" / "envdump"
    cgi.write_text(ENVDUMP_CGI)
    cgi.chmod(0o755)
    return h


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


HANDLER = loc("/api/auth", " SetHandler scalekit\n")


def identity_server(idp, httpd_factory, extra_conf="", prefix="X-Scalekit-"):
    """/cgi-bin protected as usual; /hdr the same CGI with claims as headers; /pass the same
    with claims as headers and no sign-in required (ScalekitUnauthAction pass)."""
    locations = (HANDLER + loc("/cgi-bin", " AuthType Scalekit\n Require valid-user\n") +
                 "ScriptAlias /hdr @ROOT@/cgi-bin/envdump\nScriptAlias /pass @ROOT@/cgi-bin/envdump\n" +
                 loc("/hdr", " AuthType Scalekit\n ScalekitClaimHeaders %s\n Require valid-user\n" % prefix) +
                 loc("/pass", " AuthType Scalekit\n ScalekitUnauthAction pass\n"
                     " ScalekitClaimHeaders %s\n Require valid-user\n" % prefix))
    return with_envdump(httpd_factory(idp=idp, locations=locations, extra_conf=extra_conf))


def sign_raw(idp, payload: bytes, header=None):
    """A token signed with the IdP's current key over payload bytes exactly as given (the IdP's
    own minting goes through JSON text, which cannot carry invalid UTF-8)."""
    with open(os.path.join(idp.state_dir, "keys.json")) as f:
        ring = json.load(f)
    rec = next(k for k in ring["keys"] if k["kid"] == ring["current"])
    key = serialization.load_pem_private_key(rec["pem"].encode(), password=None)
    hdr = json.dumps(header or {"alg": "RS256", "kid": rec["kid"], "typ": "JWT"}).encode()
    signing_input = (b64u(hdr) + "." + b64u(payload)).encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64u(sig)


def access_claims(idp, **over):
    """The claims of a normal access token of the test user (from the IdP), overlaid."""
    token = idp.mint({}, base="access")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    claims.update(over)
    return claims


def seal(secret, plain: bytes, label=b"mod_scalekit state cookie v1"):
    """What state.c does: HKDF-SHA256(secret, salt "mod_scalekit", info label) -> AES-256-GCM,
    base64url(iv | ciphertext | tag)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mod_scalekit", info=label).derive(secret.encode())
    iv = os.urandom(12)
    return b64u(iv + AESGCM(key).encrypt(iv, plain, None))


def raw_exchange(h, data):
    """Bytes sent as they are on one connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", h.port), timeout=30) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def raw_request(h, target, headers=(), method="GET"):
    """One request exactly as written (no client-side normalisation): (status, headers, body)."""
    # HTTP/1.0: no chunked answer to decode.
    lines = ["%s %s HTTP/1.0" % (method, target), "Host: localhost:%d" % h.port, "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    data = raw_exchange(h, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head, _, body = data.partition(b"\r\n\r\n")
    head = head.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    hdrs = [tuple(x.strip() for x in line.split(":", 1)) for line in head[1:] if ":" in line]
    return status, hdrs, body


def header_values(hdrs, name):
    return [v for k, v in hdrs if k.lower() == name.lower()]


def no_session_set(r_or_cookies):
    """No response handed out session cookies with a value."""
    cookies = r_or_cookies if isinstance(r_or_cookies, list) else set_cookies(r_or_cookies)
    return not any(re.match(r"sk-(access|id|refresh)-token=[^;]", c) for c in cookies)


def follow_signin(s, first):
    """From a 302 to /oauth/authorize: through the IdP (auto-login) to our callback's answer."""
    assert first.status_code == 302 and "/oauth/authorize?" in first.headers["Location"], first.status_code
    at_idp = s.get(first.headers["Location"], allow_redirects=False)
    return s.get(at_idp.headers["Location"], allow_redirects=False)


# ------------------------------------------------------------------------------------------------
# Forged identity: the client never sets REMOTE_USER, SCALEKIT_* or the claim headers
# ------------------------------------------------------------------------------------------------

FORGED = [("Scalekit-Email", "mallory@evil.example"), ("SCALEKIT_SUB", "usr_mallory"),
          ("X-Scalekit-Sub", "usr_mallory"), ("x-scalekit-email", "mallory@evil.example"),
          ("X_SCALEKIT_EMAIL", "mallory@evil.example"), ("X-SCALEKIT-NAME", "Mallory"),
          ("x-Scalekit_Roles", "superadmin"), ("X-Scalekit-Organization-Id", "org_mallory"),
          ("X-Scalekit-Session-Id", "ses_mallory"), ("X-Scalekit-Permissions", "mallory:all"),
          ("X-Scalekit-Extra", "mallory-extra"), ("Remote-User", "mallory"), ("Remote_User", "mallory"),
          ("Scalekit-Sub", "usr_mallory"), ("scalekit_email", "mallory@evil.example"),
          ("Auth-Type", "mallory")]


def _forged_request(h, path, cookies=None):
    # requests would merge header names that differ only in case: send them as raw lines.
    headers = list(FORGED) + [("Accept", "application/json")]
    if cookies:
        headers.append(("Cookie", "; ".join("%s=%s" % kv for kv in cookies.items())))
    status, _, body = raw_request(h, path, headers)
    assert status == 200, (path, status, body[:300])
    return {k: bytes.fromhex(v) for k, v in json.loads(body).items()}


def test_client_headers_never_become_the_user(idp, httpd_factory):
    h = identity_server(idp, httpd_factory)
    ada = {"sk-access-token": idp.mint({"email": "ada@example.com", "name": "Ada Lovelace"}, base="access")}
    for path in ("/cgi-bin/envdump", "/hdr", "/pass"):
        env = _forged_request(h, path, ada)
        assert env["REMOTE_USER"] == b"usr_demo001" and env["AUTH_TYPE"] == b"Scalekit", path
        assert env["SCALEKIT_SUB"] == b"usr_demo001", path
        assert env["SCALEKIT_EMAIL"] == b"ada@example.com" and env["SCALEKIT_NAME"] == b"Ada Lovelace", path
        assert env["SCALEKIT_ROLES"] == b"admin" and env["SCALEKIT_ORGANIZATION_ID"] == b"org_demo", path
        if path != "/cgi-bin/envdump":                 # claims as headers: only the module's
            assert env["HTTP_X_SCALEKIT_SUB"] == b"usr_demo001"
            assert env["HTTP_X_SCALEKIT_EMAIL"] == b"ada@example.com"
            assert env["HTTP_X_SCALEKIT_ROLES"] == b"admin"
            assert "HTTP_X_SCALEKIT_EXTRA" not in env
        owned = ("SCALEKIT_", "REMOTE_USER", "AUTH_TYPE") + (("HTTP_X_SCALEKIT_",) if path != "/cgi-bin/envdump" else ())
        for k, v in env.items():
            if k.startswith(owned):
                assert b"mallory" not in v.lower() and b"superadmin" not in v, (path, k, v)
    # Without a session ("pass"): no user, no SCALEKIT_*, and no claim header survives.
    env = _forged_request(h, "/pass")
    assert env.get("REMOTE_USER", b"") == b""
    assert not [k for k in env if k.startswith(("SCALEKIT_", "HTTP_X_SCALEKIT", "HTTP_X_SCALEKIT_"))], env


def test_scalekit_named_client_headers_removed_with_claim_headers(idp, httpd_factory):
    """Issue 6: when claims are passed as headers, client headers that could be taken for them,
    e.g. Scalekit-Email (HTTP_SCALEKIT_EMAIL in CGI), are removed - also when the configured
    prefix is X-Scalekit-. A backend reading HTTP_SCALEKIT_* must never see a client's value."""
    for prefix in ("Scalekit-", "X-Scalekit-"):
        h = identity_server(idp, httpd_factory, prefix=prefix)
        ada = {"sk-access-token": idp.mint({"email": "ada@example.com"}, base="access")}
        env = _forged_request(h, "/hdr", ada)
        own = "HTTP_" + prefix.upper().replace("-", "_")
        forged = {k: v for k, v in env.items()
                  if k.startswith(("HTTP_SCALEKIT_", own)) and b"mallory" in v.lower()}
        assert forged == {}, (prefix, forged)
        h.stop()


# ------------------------------------------------------------------------------------------------
# Claim values: control bytes, invalid UTF-8, very long values made safe, never a crash
# ------------------------------------------------------------------------------------------------

NASTY = {"email": "ada\r\nSet-Cookie: pwned=1@example.com",
         "name": "Ada\x01\x07\x08\x0b\x0c\x1b[31mRed\x1b[0m\x7f\x1f!",
         "roles": ["admin\r\nX-Injected: 1", "ed\titor"], "oid": "org_\nX", "sid": "ses_\x01tail",
         "sub": "usr_demo001\r\nFAKE LOG LINE"}


def _safe(v):
    return not any(b < 0x20 or b == 0x7f for b in v)


def test_control_bytes_in_claims_are_made_safe(idp, httpd_factory):
    h = identity_server(idp, httpd_factory)
    # NUL: jwt.c refuses a \u0000 anywhere (cJSON would cut the string there): a clean 401.
    nul = idp.mint({"name": "Ada\x00Admin"}, base="access")
    r = requests.get(h.url + "/cgi-bin/envdump", cookies={"sk-access-token": nul}, headers=API)
    assert r.status_code == 401
    token = idp.mint(NASTY, base="access")
    for path in ("/cgi-bin/envdump", "/hdr"):
        env = env_of(requests.get(h.url + path, cookies={"sk-access-token": token}, headers=API))
        assert env["REMOTE_USER"].startswith(b"usr_demo001")
        values = {k: v for k, v in env.items() if k.startswith(("SCALEKIT_", "HTTP_X_SCALEKIT_"))}
        values["REMOTE_USER"] = env["REMOTE_USER"]
        assert len(values) >= 6
        for k, v in values.items():
            assert _safe(v), (path, k, v)
        assert "HTTP_X_INJECTED" not in env and "HTTP_SET_COOKIE" not in env
    # Logs: a sign-in whose sub carries CR/LF (the callback logs the user) and an authz refusal.
    idp.set_user(sub="usr_demo001\nFAKE LOG LINE\r\nX", email="ada\r\nFAKE@example.com")
    s = requests.Session()
    r = s.get(h.url + "/api/auth/login?return_to=/cgi-bin/envdump", allow_redirects=False)
    done = follow_signin(s, r)
    assert done.status_code == 302, done.status_code
    assert _safe(env_of(s.get(h.url + "/cgi-bin/envdump", headers=API))["REMOTE_USER"])
    h.access_log(at_least=4)
    for name, text in (("error_log", h.error_log()), ("access_log", h._read("logs/access_log"))):
        assert not re.search(r"^\s*FAKE", text, re.M), name
        assert "\r" not in text, name


INVALID_UTF8 = [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80"]


def test_invalid_utf8_in_claims_is_made_safe(idp, httpd_factory):
    """Issue 6: invalid UTF-8 in a claim is made safe before the environment and headers. The
    token is signed by the IdP's key (so it is genuine) over raw bytes JSON text cannot carry."""
    h = identity_server(idp, httpd_factory)
    claims = access_claims(idp)
    text = json.dumps(dict(claims, email="EMAIL", name="NAME")).encode()
    bad = b"Ada" + b"|".join(INVALID_UTF8) + b"!"
    payload = text.replace(b'"EMAIL"', b'"ada' + b"\xc0\xae" + b'@example.com"').replace(b'"NAME"', b'"' + bad + b'"')
    token = sign_raw(idp, payload)
    for path in ("/cgi-bin/envdump", "/hdr"):
        r = requests.get(h.url + path, cookies={"sk-access-token": token}, headers=API)
        env = env_of(r)                                       # no crash, a session
        assert env["REMOTE_USER"] == b"usr_demo001"
        for k in ("SCALEKIT_NAME", "SCALEKIT_EMAIL") + (("HTTP_X_SCALEKIT_NAME",) if path == "/hdr" else ()):
            v = env[k]
            assert _safe(v), (k, v)
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                pytest.fail("%s reaches %s as invalid UTF-8: %r" % (k, path, v))


def test_very_long_claim_values(idp, httpd_factory):
    h = identity_server(idp, httpd_factory, extra_conf=BIG_HEADERS)
    name = "N" * 9000
    token = idp.mint({"name": name, "roles": ["r%d" % i for i in range(300)]}, base="access")
    assert len(token) < 16384
    for path in ("/cgi-bin/envdump", "/hdr"):
        env = env_of(requests.get(h.url + path, cookies={"sk-access-token": token}, headers=API))
        assert env["SCALEKIT_NAME"] == name.encode()
        assert env["SCALEKIT_ROLES"].count(b",") == 299
    # Past the module's token size limit (16 KiB): refused cleanly, whatever the header limit.
    huge = idp.mint({"name": "N" * 20000}, base="access")
    r = requests.get(h.url + "/cgi-bin/envdump", cookies={"sk-access-token": huge}, headers=API)
    assert r.status_code == 401
    assert "too-large" in h.error_log()


# ------------------------------------------------------------------------------------------------
# Cookies: oversized, many, duplicated, garbage, truncated, re-sealed; pending states bounded
# ------------------------------------------------------------------------------------------------

def test_tokens_too_large_for_cookies_get_a_clear_error(idp, httpd_factory):
    """Browsers drop a cookie over 4096 bytes without a word, so a big access token (much
    metadata) made a sign-in loop. Now a 500 page and a log line that names the fix."""
    idp.set_user(access_token_extra={"user_metadata": {"note": "x" * 5000}})
    h = httpd_factory(idp=idp)
    s = requests.Session()
    r = s.get(h.url + "/api/auth/login", params={"return_to": "/cgi-bin/whoami"})
    assert r.status_code == 500 and "too large" in r.text and not s.cookies.get("sk-access-token")
    assert "too large for the cookie sk-access-token" in h.error_log()
    assert "use ScalekitSessionStore" in h.error_log()
    # A session store keeps the same tokens.
    stored = httpd_factory(idp=idp, extra_conf="ScalekitSessionStore shmcb\n")
    r = requests.Session().get(stored.url + "/api/auth/login", params={"return_to": "/cgi-bin/whoami"})
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"


def _clean(status):
    return status in (200, 302, 400, 401, 403)


def test_oversized_cookie_header_is_refused_by_httpd(httpd, idp):
    token = idp.mint({}, base="access")
    cookie = "junk=" + "j" * 17000 + "; sk-access-token=" + token
    status, hdrs, body = raw_request(httpd, "/cgi-bin/whoami", [("Cookie", cookie), ("Accept", "application/json")])
    assert status == 400                         # LimitRequestFieldSize 8190: httpd, before the module
    assert not header_values(hdrs, "Set-Cookie")
    r = requests.get(httpd.url + "/cgi-bin/whoami", cookies={"sk-access-token": token})
    assert r.status_code == 200                  # and the server is fine


def test_oversized_cookie_headers_with_raised_limit(idp, httpd_factory):
    h = httpd_factory(idp=idp, extra_conf=BIG_HEADERS)
    token = idp.mint({}, base="access")
    junk = "; ".join("j%d=%s" % (i, "x" * 200) for i in range(200))          # ~40 KB
    cases = {
        "junk then token": (junk + "; sk-access-token=" + token, 200),
        "token then junk": ("sk-access-token=" + token + "; " + junk, 200),
        "junk only": (junk, 401),
        "40 KB access token": ("sk-access-token=" + "A" * 40000, 401),
        "40 KB ID token": ("sk-access-token=" + token + "; sk-id-token=" + "A" * 40000, 401),
        "40 KB refresh token": ("sk-refresh-token=" + "R" * 40000, 401),
        "one 60 KB name": ("n" * 60000 + "=1", 401),
        "60 KB of semicolons": (";" * 60000, 401),
    }
    for why, (cookie, want) in cases.items():
        status, hdrs, body = raw_request(h, "/cgi-bin/whoami", [("Cookie", cookie), ("Accept", "application/json")])
        assert status == want, (why, status, body[:200])
        if want != 200:
            assert no_session_set([v for v in header_values(hdrs, "Set-Cookie")]), why
    # A 40 KB state cookie at the callback: refused before any token request.
    idp.clear_log()
    status, _, _ = raw_request(h, "/api/auth/callback?code=c&state=" + "S" * 43,
                               [("Cookie", "sk-state-SSSSSSSSSSSSSSSS=" + "S" * 40000)])
    assert status == 400 and endpoint_calls(idp, "/oauth/token") == []


def test_five_hundred_cookies(idp, httpd_factory):
    h = httpd_factory(idp=idp, extra_conf=BIG_HEADERS)
    token = idp.mint({}, base="access")
    many = "; ".join("c%d=v%d" % (i, i) for i in range(500))
    status, _, body = raw_request(h, "/cgi-bin/whoami", [("Cookie", many + "; sk-access-token=" + token)])
    assert status == 200 and json.loads(body)["REMOTE_USER"] == "usr_demo001"
    # 500 pending-state cookies (a client that never drops any): sign-in still starts, and the
    # answer clears the surplus - bounded by what was sent - and sets one new state.
    states = "; ".join("sk-state-%016d=%s" % (i, "x" * 20) for i in range(500))
    status, hdrs, _ = raw_request(h, "/api/auth/login?return_to=/dashboard/", [("Cookie", states)])
    assert status == 302
    cookies = header_values(hdrs, "Set-Cookie")
    assert len([c for c in cookies if "Max-Age=0" not in c]) == 1
    assert len(cookies) <= 501
    # The same at the callback: refused (none of them opens), never a 500.
    status, _, _ = raw_request(h, "/api/auth/callback?code=c&state=%016d" % 7 + "x" * 27, [("Cookie", states)])
    assert status == 400


def test_duplicated_access_token_cookies(idp, httpd_factory):
    h = httpd_factory(idp=idp)
    good = idp.mint({}, base="access")
    other = idp.mint({"sub": "usr_other"}, base="access")
    path = "/cgi-bin/whoami"
    # First valid: that one counts (a browser sends the longest path, then the oldest, first).
    status, _, body = raw_request(h, path, [("Cookie", "sk-access-token=%s; sk-access-token=garbage" % good)])
    assert status == 200 and json.loads(body)["REMOTE_USER"] == "usr_demo001"
    status, _, body = raw_request(h, path, [("Cookie", "sk-access-token=%s; sk-access-token=%s" % (good, other))])
    assert status == 200 and json.loads(body)["REMOTE_USER"] == "usr_demo001"   # one reading, not two
    # First garbage: no session (not the second one), a clean answer.
    for first in ("garbage", "", '""', good[:-5]):
        cookie = "sk-access-token=%s; sk-access-token=%s" % (first, good)
        status, hdrs, body = raw_request(h, path, [("Cookie", cookie), ("Accept", "application/json")])
        assert status == 401, (first, status)
        status, hdrs, _ = raw_request(h, path, [("Cookie", cookie)] + list(NAV.items()))
        assert status == 302 and "/oauth/authorize?" in header_values(hdrs, "Location")[0]
    # Two Cookie headers (RFC 6265 forbids it; httpd joins them with ", "): one reading or none,
    # never the second user, never an error.
    status, _, body = raw_request(h, path, [("Cookie", "sk-access-token=" + good), ("Cookie", "sk-access-token=" + other),
                                            ("Accept", "application/json")])
    assert status in (200, 401)
    if status == 200:
        assert json.loads(body)["REMOTE_USER"] == "usr_demo001"


def _garbage_values(token):
    head, payload, sig = token.split(".")
    return ["garbage", "a.b.c", "..", "....", "." * 300, token[: len(token) // 2], token[:-1], token + "x",
            token + ".", head + "." + payload, head + "." + payload + ".", "." + payload + "." + sig,
            '"' + token, token + '"', token.replace(".", ".."), "eyJ" * 1000,
            head + "." + b64u(b'{"sub":"usr_demo001"}') + "." + sig,          # payload swapped
            b64u(b'{"alg":"none"}') + "." + payload + ".",                      # alg none
            "%00", "\\", "é" * 10, "\x7f" * 5]


def test_garbage_and_truncated_session_cookies(idp, httpd_factory):
    h = httpd_factory(idp=idp)
    good_access = idp.mint({}, base="access")
    good_id = idp.mint({}, base="id")
    for v in _garbage_values(good_access):
        v = v.encode("utf-8").decode("latin-1")                   # raw bytes on the wire
        for cookie in ("sk-access-token=" + v,                                   # bad access token
                       "sk-access-token=%s; sk-id-token=%s" % (good_access, v),   # good access, bad ID
                       "sk-id-token=%s; sk-access-token=%s" % (good_id, v)):
            status, hdrs, body = raw_request(h, "/cgi-bin/whoami", [("Cookie", cookie), ("Accept", "application/json")])
            # 400: httpd itself refuses a control byte (DEL) in a header field.
            assert status == 401 or (status == 400 and "\x7f" in v), (cookie[:80], status, body[:200])
            assert no_session_set(header_values(hdrs, "Set-Cookie"))
    # A garbage refresh token alone: no refresh (no access token proves a session), cookies
    # cleared, back to sign-in.
    status, hdrs, _ = raw_request(h, "/dashboard/", [("Cookie", "sk-refresh-token=garbage")] + list(NAV.items()))
    assert status == 302 and "/oauth/authorize?" in header_values(hdrs, "Location")[0]
    assert any(c.startswith("sk-refresh-token=;") and "Max-Age=0" in c for c in header_values(hdrs, "Set-Cookie"))
    assert "no access token came with it" in h.error_log()
    assert not [e for e in idp.log() if e["path"] == "/oauth/token"]


def _pending(h, s):
    """Start a sign-in in session s: (state, nonce, state cookie name, authorize URL)."""
    r = s.get(h.url + "/api/auth/login?return_to=/cgi-bin/whoami", allow_redirects=False)
    params = q(r.headers["Location"])
    return params["state"], params["nonce"], "sk-state-" + params["state"][:16], r.headers["Location"]


def replace_cookie(s, name, value):
    found = [c for c in s.cookies if c.name == name]
    assert len(found) == 1, name
    found[0].value = value


def _state_json(state, nonce, verifier="v" * 43, created=None, return_to="/cgi-bin/whoami"):
    return json.dumps({"s": state, "n": nonce, "v": verifier, "r": return_to,
                       "t": int(time.time()) if created is None else created, "q": 0}).encode()


def test_resealed_truncated_and_stale_state_cookies(httpd, idp):
    # Positive control: our seal() is the module's (right secret) - the callback gets as far as the
    # token endpoint, whose PKCE check then refuses our made-up verifier.
    s = requests.Session()
    state, nonce, name, authorize = _pending(httpd, s)
    callback = s.get(authorize, allow_redirects=False).headers["Location"]
    replace_cookie(s, name, seal(idp.client_secret, _state_json(state, nonce)))
    idp.clear_log()
    r = s.get(callback, allow_redirects=False)
    assert len(endpoint_calls(idp, "/oauth/token")) == 1, "seal() does not match state.c"
    assert r.status_code == 403 and no_session_set(r)

    cases = {
        "valid JSON sealed under another secret": lambda st, n, v: seal("another-secret", _state_json(st, n)),
        "valid JSON sealed under another label": lambda st, n, v: seal(idp.client_secret, _state_json(st, n),
                                                                       label=b"mod_scalekit state cookie v2"),
        "truncated by one character": lambda st, n, v: v[:-1],
        "truncated to half": lambda st, n, v: v[: len(v) // 2],
        "truncated to the IV": lambda st, n, v: v[:16],
        "plain JSON, not sealed": lambda st, n, v: b64u(_state_json(st, n)),
        "empty": lambda st, n, v: "",
        "right secret, started two hours ago": lambda st, n, v: seal(idp.client_secret, _state_json(
            st, n, created=int(time.time()) - 7200)),
        "right secret, another state": lambda st, n, v: seal(idp.client_secret, _state_json(
            ("x" if st[0] != "x" else "y") + st[1:], n)),       # never the state itself (1 in 64 starts with x)
        "right secret, time not a number": lambda st, n, v: seal(idp.client_secret, _state_json(st, n, created="now")),
    }
    for why, forge in cases.items():
        s = requests.Session()
        state, nonce, name, authorize = _pending(httpd, s)
        callback = s.get(authorize, allow_redirects=False).headers["Location"]
        replace_cookie(s, name, forge(state, nonce, s.cookies.get(name)))
        idp.clear_log()
        r = s.get(callback, allow_redirects=False)
        assert r.status_code == 400, (why, r.status_code)
        assert endpoint_calls(idp, "/oauth/token") == [], why            # refused before the IdP
        assert no_session_set(r), why


def test_pending_state_cookies_bounded_under_100_starts(httpd):
    s = requests.Session()
    most_set = 0
    for _ in range(100):
        r = s.get(httpd.url + "/api/auth/login", allow_redirects=False)
        assert r.status_code == 302
        most_set = max(most_set, len(set_cookies(r)))
        assert len([c for c in s.cookies if c.name.startswith("sk-state-")]) <= 5
    assert most_set <= 6                        # one new state, a few cleared: never a growing list
    cookie_header = "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies)
    assert len(cookie_header) < 4000            # well under httpd's 8190-byte header limit
    r = s.get(httpd.url + "/api/auth/login?return_to=/dashboard/")
    assert r.url == httpd.url + "/dashboard/"  # and the newest sign-in still finishes


def test_long_return_to_cannot_lock_the_browser_out(httpd):
    """Sign-ins with a long return_to (an attacker's page can start them) make big state cookies.
    They must not pile up past httpd's header limit, which would answer 400 to every request, the
    sign-out included, and they last only the sign-in's time."""
    s = requests.Session()
    target = "/cgi-bin/whoami?q=" + "x" * 1900
    for _ in range(8):
        r = s.get(httpd.url + "/api/auth/login", params={"return_to": target}, allow_redirects=False)
        assert r.status_code == 302
        new = [c for c in set_cookies(r) if c.startswith("sk-state-") and "Max-Age=0" not in c]
        assert len(new) == 1 and "; Max-Age=600" in new[0], new
    cookie_header = "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies)
    assert len(cookie_header) <= 4096, len(cookie_header)
    assert s.get(httpd.url + "/dashboard/", allow_redirects=False).status_code == 302   # not 400
    r = s.get(httpd.url + "/api/auth/login", params={"return_to": target})
    assert r.status_code == 200 and r.url == httpd.url + target     # the newest sign-in finishes


# ------------------------------------------------------------------------------------------------
# Token substitution
# ------------------------------------------------------------------------------------------------

def test_id_token_for_another_client_is_refused(httpd, idp):
    idp.set_user(id_token_extra={"aud": ["skc_other"], "azp": "skc_other"})
    s = requests.Session()
    done = follow_signin(s, s.get(httpd.url + "/api/auth/login", allow_redirects=False))
    assert done.status_code == 502 and no_session_set(done)
    assert "bad-audience" in httpd.error_log()
    # The same ID token next to a good access token in cookies: no session either.
    r = requests.get(httpd.url + "/cgi-bin/whoami", headers=API, cookies={
        "sk-access-token": idp.mint({}, base="access"),
        "sk-id-token": idp.mint({"aud": ["skc_other"]}, base="id")})
    assert r.status_code == 401


def test_id_token_is_no_access_token(idp, httpd_factory, browser_session):
    """ID and access tokens share iss and aud. An ID token travels further (the logout URL's
    id_token_hint), so one offered as the access token, in a cookie or as a bearer, is refused."""
    h = httpd_factory(idp=idp, locations=HANDLER + loc("/cgi-bin", " AuthType Scalekit\n"
                      " ScalekitBearer On\n Require valid-user\n"))
    s = browser_session()
    signin(h, s)
    access, id_token = s.cookies.get("sk-access-token"), s.cookies.get("sk-id-token")
    assert access and id_token
    cases = {"ID token as the access cookie": {"cookies": {"sk-access-token": id_token,
                                                           "sk-id-token": id_token}},
             "ID token alone as the access cookie": {"cookies": {"sk-access-token": id_token}},
             "ID token as a bearer": {"headers": {"Authorization": "Bearer " + id_token}},
             "access token without sub": {"headers": {"Authorization": "Bearer " + idp.mint(
                 {"sub": None}, base="access")}}}
    for why, how in cases.items():
        r = requests.get(h.url + "/cgi-bin/whoami", headers={**API, **how.get("headers", {})},
                         cookies=how.get("cookies"), allow_redirects=False)
        assert r.status_code == 401, (why, r.status_code)
    log = h.error_log()
    assert "wrong-token-kind" in log and "no sub" in log
    # Control: the real pair, and the access token as a bearer, are sessions.
    for how in ({"cookies": {"sk-access-token": access, "sk-id-token": id_token}},
                {"headers": {"Authorization": "Bearer " + access}}):
        r = requests.get(h.url + "/cgi-bin/whoami", headers={**API, **how.get("headers", {})},
                         cookies=how.get("cookies"))
        assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"


def test_id_token_from_another_signin_is_refused(httpd, idp):
    """An ID token minted for another sign-in (its nonce) cannot finish this one."""
    idp.set_user(id_token_extra={"nonce": "n" * 43})
    s = requests.Session()
    done = follow_signin(s, s.get(httpd.url + "/api/auth/login", allow_redirects=False))
    assert done.status_code == 502 and no_session_set(done)
    assert "nonce does not match" in httpd.error_log()


def test_tokens_from_another_environment_are_refused(idp, httpd_factory, tmp_path):
    """Another Scalekit environment: its own issuer. The second local IdP even shares the first
    one's signing keys, so only the exact issuer check stands between its tokens and a session."""
    from idp import IdP
    other = IdP(state_dir=str(tmp_path / "other-idp")).start()
    try:
        assert other.keys()["current"] == idp.keys()["current"], "the two IdPs should share keys"
        h = httpd_factory(idp=idp)
        access, id_token = other.mint({}, base="access"), other.mint({}, base="id")
        assert json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))["iss"] == other.url
        r = requests.get(h.url + "/cgi-bin/whoami", headers=API,
                         cookies={"sk-access-token": access, "sk-id-token": id_token})
        assert r.status_code == 401
        assert "bad-issuer" in h.error_log()
        # Control: the same request with the first environment's tokens is a session.
        r = requests.get(h.url + "/cgi-bin/whoami", headers=API, cookies={
            "sk-access-token": idp.mint({}, base="access"), "sk-id-token": idp.mint({}, base="id")})
        assert r.status_code == 200
        # At the callback: the code exchange answers with an access token of the other issuer.
        idp.set_user(access_token_extra={"iss": other.url})
        s = requests.Session()
        done = follow_signin(s, s.get(h.url + "/api/auth/login", allow_redirects=False))
        assert done.status_code == 502 and no_session_set(done)
    finally:
        other.stop()


def test_code_from_another_browsers_signin_is_refused(httpd, idp):
    """Code injection: the attacker's authorization code, delivered with the victim's own state.
    The state matches the victim's cookie, but the code was issued for the attacker's PKCE
    challenge (and nonce): the token endpoint refuses the victim's verifier, no session."""
    victim = requests.Session()
    v_state, _, _, _ = _pending(httpd, victim)
    attacker = requests.Session()
    _, _, _, a_authorize = _pending(httpd, attacker)
    a_callback = attacker.get(a_authorize, allow_redirects=False).headers["Location"]
    a_code = q(a_callback)["code"]
    idp.clear_log()
    r = victim.get(httpd.url + "/api/auth/callback?" + up.urlencode({"code": a_code, "state": v_state}),
                   allow_redirects=False)
    assert r.status_code in (403, 502) and no_session_set(r)
    calls = endpoint_calls(idp, "/oauth/token", grant_type="authorization_code")
    assert len(calls) == 1 and calls[0]["status"] == 400           # PKCE: verifier does not match
    assert calls[0]["form"]["code"] == a_code and calls[0]["form"].get("code_verifier")
    r = victim.get(httpd.url + "/cgi-bin/whoami", headers=API)
    assert r.status_code == 401
    # And the attacker's own callback still works for the attacker (nothing else was consumed)...
    # except its code, which the IdP burnt on the refused attempt: a replay of it is refused too.
    r = attacker.get(a_callback, allow_redirects=False)
    assert r.status_code in (403, 502) and no_session_set(r)


def test_replayed_callback_in_the_same_browser(httpd, idp):
    """The back button after a finished sign-in: the state cookie is gone, refused before the IdP."""
    s = requests.Session()
    _, _, _, authorize = _pending(httpd, s)
    callback = s.get(authorize, allow_redirects=False).headers["Location"]
    assert s.get(callback, allow_redirects=False).status_code == 302
    idp.clear_log()
    r = s.get(callback, allow_redirects=False)
    assert r.status_code == 400 and no_session_set(r)
    assert endpoint_calls(idp, "/oauth/token") == []


# ------------------------------------------------------------------------------------------------
# Open redirect through a protected URL (the return address of an automatic sign-in)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("whole_site", [False, True])
def test_protected_request_path_cannot_redirect_off_site(idp, httpd_factory, whole_site):
    """A browser follows http://site//evil.example/dashboard/ as the path //evil.example/...; when
    that request needs a sign-in, its path becomes the return address. It must stay on the site."""
    locations = None
    if whole_site:
        locations = (loc("/", " AuthType Scalekit\n Require valid-user\n") +
                     loc("/api/auth", " SetHandler scalekit\n Require all granted\n"))
    h = httpd_factory(idp=idp, locations=locations)
    site = (up.urlsplit(h.url).scheme, up.urlsplit(h.url).netloc)
    tried = 0
    for target in ("//evil.example/dashboard/", "//evil.example/", "/\\evil.example/dashboard/",
                   "///evil.example/dashboard/", "/%5Cevil.example/dashboard/", "/\\/evil.example/",
                   "//evil.example%2Fdashboard/", "/dashboard/\\..\\..//evil.example"):
        status, hdrs, _ = raw_request(h, target, list(NAV.items()))
        if status != 302:
            continue
        loc_ = header_values(hdrs, "Location")[0]
        assert loc_.startswith(idp.url + "/oauth/authorize?"), (target, loc_)
        s = requests.Session()
        for c in header_values(hdrs, "Set-Cookie"):
            k, v = c.split(";")[0].split("=", 1)
            s.cookies.set(k, v)
        done = s.get(s.get(loc_, allow_redirects=False).headers["Location"], allow_redirects=False)
        assert done.status_code == 302
        tried += 1
        assert browser_target(done.headers["Location"], h.url) == site, (target, done.headers["Location"])
    assert tried >= 1


def test_idp_initiated_relay_state_stays_on_site(httpd, idp):
    """IdP-initiated sign-in: relay_state is a return address from a token; only local paths."""
    site = (up.urlsplit(httpd.url).scheme, up.urlsplit(httpd.url).netloc)
    for relay in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil.example",
                  "/ok/page?x=1"):
        s = requests.Session()
        token = idp.idp_initiated(relay_state=relay)
        first = s.get(httpd.url + "/api/auth/login", params={"idp_initiated_login": token}, allow_redirects=False)
        done = follow_signin(s, first)
        assert done.status_code == 302
        assert browser_target(done.headers["Location"], httpd.url) == site, (relay, done.headers["Location"])
        if relay == "/ok/page?x=1":
            assert done.headers["Location"] == relay
    # A token for another client is no IdP-initiated sign-in at all.
    bad = idp.idp_initiated(relay_state="/x", client_id="skc_other")
    r = requests.get(httpd.url + "/api/auth/login", params={"idp_initiated_login": bad}, allow_redirects=False)
    assert r.status_code == 400 and not set_cookies(r)


# ------------------------------------------------------------------------------------------------
# Secrets: never logged, tokens only as short hashes; error pages without internals
# ------------------------------------------------------------------------------------------------

def test_debug_log_has_no_secret_and_no_full_token(idp, httpd_factory, browser_session):
    from httpd import DEFAULT_LOCATIONS
    h = httpd_factory(idp=idp, loglevel="debug", extra_conf="ScalekitLeeway 0\n",
                      locations=DEFAULT_LOCATIONS + loc("/sk-status", " SetHandler scalekit-status\n"))
    s = browser_session()
    secrets_seen = {"client secret": idp.client_secret}

    def keep_tokens(tag):
        for name in ("sk-access-token", "sk-id-token", "sk-refresh-token"):
            if s.cookies.get(name):
                secrets_seen["%s %s" % (tag, name)] = s.cookies.get(name)

    signin(h, s)
    keep_tokens("first")
    expire_access_cookie(idp, s)                 # the next request refreshes
    assert s.get(h.url + "/cgi-bin/whoami", allow_redirects=False).status_code == 200
    keep_tokens("refreshed")
    assert secrets_seen["first sk-refresh-token"] != secrets_seen["refreshed sk-refresh-token"]
    r = s.get(h.url + "/api/auth/logout", allow_redirects=False)
    assert r.status_code == 302
    for e in idp.log():
        form, query = e.get("form") or {}, e.get("query") or {}
        for k in ("code", "code_verifier", "refresh_token", "client_secret"):
            if form.get(k):
                secrets_seen["IdP form %s %d" % (k, len(secrets_seen))] = form[k]
        for k in ("state", "nonce", "code_challenge"):
            if query.get(k):
                secrets_seen["authorize %s %d" % (k, len(secrets_seen))] = query[k][0]
    log = h.error_log()
    assert "scalekit" in log.lower() and ":debug]" in log       # the debug story was written
    # The status page (text and JSON) is no place for them either.
    log += requests.get(h.url + "/sk-status").text + requests.get(h.url + "/sk-status?json").text
    for what, value in secrets_seen.items():
        assert value not in log, what
        if value.count(".") == 2:                # a JWT: no payload or signature either
            for part in value.split(".")[1:]:
                assert len(part) < 16 or part not in log, what
    # Tokens appear as short hashes: the first 12 hex of their SHA-256.
    hashes_ = {hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in secrets_seen.items() if "token" in k}
    assert any(x in log for x in hashes_)
    assert not re.search(r"eyJ[A-Za-z0-9_-]{20,}", log)          # no JWT-looking text at all


def _internals(h, idp):
    return [str(h.root), "/usr/", "/etc/", ".c:", "Apache/2", "mod_scalekit/", "libcurl", "curl",
            "Traceback", "SSL", "status 5", idp.client_secret, "127.0.0.1:%d" % idp.port, "errno",
            "cJSON", "sk_", "0x"]


def test_error_pages_show_no_internals(idp, httpd_factory):
    h = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\nScalekitTimeout 2\n",
                      locations=None)
    pages = {}
    pages["bad return_to"] = requests.get(h.url + "/api/auth/login?return_to=//evil.example")
    pages["callback without state"] = requests.get(h.url + "/api/auth/callback?code=x&state=y")
    s = requests.Session()
    state, _, _, _ = _pending(h, s)
    pages["callback error"] = s.get(h.url + "/api/auth/callback", params={"state": state, "error": "access_denied"})
    pages["API without session"] = requests.get(h.url + "/cgi-bin/whoami", headers=API)
    pages["POST to the handler"] = requests.post(h.url + "/api/auth/login")
    pages["unknown action"] = requests.get(h.url + "/api/auth/nothing")
    for mode in ("500", "garbage", "close"):
        idp.fault(mode, paths=["/oauth/token"])
        s = requests.Session()
        pages["token endpoint " + mode] = follow_signin(s, s.get(h.url + "/api/auth/login", allow_redirects=False))
        idp.fault("none")
    # The refresh fails because the IdP is down: 502 "unavailable".
    s = requests.Session()
    signin(h, s)
    expire_access_cookie(idp, s)
    idp.fault("close", paths=["/oauth/token"])
    pages["refresh, IdP down"] = s.get(h.url + "/dashboard/", allow_redirects=False)
    idp.fault("none")
    statuses = {k: r.status_code for k, r in pages.items()}
    assert statuses["bad return_to"] == 400 and statuses["refresh, IdP down"] == 502, statuses
    assert all(400 <= v < 600 for v in statuses.values()), statuses
    for what, r in pages.items():
        for bad in _internals(h, idp):
            assert bad not in r.text, (what, bad, r.text[:500])
    # The misconfiguration 500 too.
    bare = httpd_factory(scalekit_conf="", locations=loc("/dashboard", " AuthType Scalekit\n Require valid-user\n"))
    r = requests.get(bare.url + "/dashboard/")
    assert r.status_code == 500
    assert str(bare.root) not in r.text and "Scalekit" not in r.text


# ------------------------------------------------------------------------------------------------
# TLS and the environment URL
# ------------------------------------------------------------------------------------------------

def test_untrusted_idp_certificate_refused_for_signing_keys(idp, httpd_factory):
    """test_signin.py proves it for the token endpoint; the JWKS fetch is the other TLS call. A
    bearer token (no token endpoint involved) must be refused and the log must say why."""
    conf = ("ScalekitEnvironmentURL %s\nScalekitClientID %s\nScalekitClientSecret %s\n"
            "ScalekitRedirectURI @URL@/api/auth/callback\n" % (idp.https_url, idp.client_id, idp.client_secret))
    h = httpd_factory(idp=idp, scalekit_conf=conf, locations=HANDLER +
                      loc("/cgi-bin", " AuthType Scalekit\n ScalekitBearer On\n Require valid-user\n"))
    token = idp.mint({"iss": idp.https_url}, base="access")
    r = requests.get(h.url + "/cgi-bin/whoami", headers={"Authorization": "Bearer " + token, **API})
    assert r.status_code == 401
    assert [e for e in idp.log() if e["path"] == "/keys"] == []       # no JWKS answer was read
    assert re.search(r"keys.*(certificate|SSL)", h.error_log()), h.error_log()[-1500:]


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "javascript:alert(1)",
                                    "/%2F%2Fevil.example", "https://user@evil.example/", "/x\ty"])
def test_post_logout_uri_only_local_or_absolute(idp, module_path, target):
    """The post-logout URL comes from the configuration only; even there, a scheme-relative or
    otherwise ambiguous value is refused at start-up."""
    h = Httpd(module_path, idp=idp, extra_conf='ScalekitPostLogoutRedirectURI "%s"\n' % target)
    try:
        rc, out = h.config_test()
    finally:
        h.cleanup()
    assert rc != 0 and "ScalekitPostLogoutRedirectURI" in out, out


@pytest.mark.parametrize("url", ["http://127.evil.example", "http://localhost.evil.example",
                                 "http://localhost@evil.example", "http://127.0.0.1.nip.io",
                                 "http://localhost:80@evil.example"])
def test_http_environment_url_only_for_real_loopback(idp, module_path, url):
    """Issue 6: http:// environment URLs are refused except for loopback development - by name
    and address, not by prefix: 127.evil.example and localhost.evil.example are not loopback."""
    base = ("ScalekitClientID %s\nScalekitClientSecret %s\nScalekitRedirectURI @URL@/api/auth/callback\n"
            % (idp.client_id, idp.client_secret))
    for how in ("directive", "environment"):
        if how == "directive":
            h = Httpd(module_path, idp=idp, scalekit_conf="ScalekitEnvironmentURL %s\n" % url + base)
        else:
            h = Httpd(module_path, idp=idp, scalekit_conf=base, env={"SCALEKIT_ENVIRONMENT_URL": url})
        try:
            rc, out = h.config_test()
        finally:
            h.cleanup()
        assert rc != 0, (how, url, out)
