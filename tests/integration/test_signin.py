# SPDX-License-Identifier: Apache-2.0
"""The sign-in flow end to end: real httpd with the module from the tree, the local
Scalekit-compatible IdP, real HTTP. A requests.Session plays the browser (cookie jar,
redirects followed); tests/integration/test_browser.py does it with Chromium."""
import concurrent.futures
import json
import re
import time
import urllib.parse as up

import pytest
import requests

from httpd import DEFAULT_LOCATIONS


def q(url):
    """Query of a URL as a dict of single values."""
    return {k: v[0] for k, v in up.parse_qs(up.urlsplit(url).query, keep_blank_values=True).items()}


def signin(httpd, s, return_to="/cgi-bin/whoami"):
    r = s.get(httpd.url + "/api/auth/login", params={"return_to": return_to})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r


def endpoint_calls(idp, path, **form):
    return [e for e in idp.log() if e["path"] == path
            and all(e["form"].get(k) == v for k, v in form.items())]


def set_cookies(r):
    return [v for k, v in r.raw.headers.items() if k.lower() == "set-cookie"]


def test_signin_reaches_cgi_with_identity(httpd, idp, browser_session):
    s = browser_session()
    r = s.get(httpd.url + "/cgi-bin/whoami")          # protected: sign-in, then back here
    assert r.url == httpd.url + "/cgi-bin/whoami"
    seen = r.json()
    assert seen["REMOTE_USER"] == "usr_demo001"
    assert seen["AUTH_TYPE"] == "Scalekit"
    assert seen["SCALEKIT_SUB"] == "usr_demo001"
    assert seen["SCALEKIT_EMAIL"] == "ada@example.com"      # from the ID token
    assert seen["SCALEKIT_NAME"] == "Ada Lovelace"
    assert seen["SCALEKIT_ORGANIZATION_ID"] == "org_demo"
    assert seen["SCALEKIT_SESSION_ID"].startswith("ses_")
    assert seen["SCALEKIT_ROLES"] == "admin"
    assert seen["SCALEKIT_PERMISSIONS"] == "invoices:read,invoices:write"

    authorize = [e for e in idp.log() if e["path"] == "/oauth/authorize"][0]["query"]
    assert authorize["scope"] == ["openid profile email offline_access"]
    assert authorize["code_challenge_method"] == ["S256"]
    assert len(authorize["state"][0]) >= 43 and len(authorize["nonce"][0]) >= 43
    assert authorize["redirect_uri"] == [httpd.url + "/api/auth/callback"]
    token = endpoint_calls(idp, "/oauth/token", grant_type="authorization_code")
    assert len(token) == 1
    form = token[0]["form"]
    assert form["client_secret"] == idp.client_secret and len(form["code_verifier"]) >= 43
    assert form["redirect_uri"] == httpd.url + "/api/auth/callback"


def test_session_cookies_and_state_cookie_attributes(httpd, idp):
    s = requests.Session()
    r = s.get(httpd.url + "/api/auth/login?return_to=/dashboard/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Cache-Control"] == "no-store"
    state_cookie = [c for c in set_cookies(r) if c.startswith("sk-state-")]
    assert len(state_cookie) == 1
    assert "HttpOnly" in state_cookie[0] and "SameSite=Lax" in state_cookie[0]
    r = s.get(r.headers["Location"], allow_redirects=False)      # the IdP, auto-login
    cb = s.get(r.headers["Location"], allow_redirects=False)     # our callback
    assert cb.status_code == 302 and cb.headers["Location"] == "/dashboard/"
    # The last Set-Cookie of each name: the ID token's goes to the handler's path (after the
    # line clearing an older one at Path=/), the profile's and the others' to every path.
    cookies = {c.split("=", 1)[0]: c for c in set_cookies(cb)}
    for name, path in (("sk-access-token", "/"), ("sk-id-token", "/api/auth"),
                       ("sk-refresh-token", "/"), ("sk-profile", "/")):
        c = cookies[name]
        assert "HttpOnly" in c and "SameSite=Lax" in c and "; Path=%s;" % path in c, c
        assert "Secure" not in c                  # plain http: a browser would drop it
    assert any(k.startswith("sk-state-") and "Max-Age=0" in v for k, v in cookies.items())


def test_secure_cookies_when_configured(idp, httpd_factory):
    h = httpd_factory(idp=idp, extra_conf="ScalekitCookieSecure on\n")
    s = requests.Session()
    r = s.get(h.url + "/api/auth/login", allow_redirects=False)
    assert all("; Secure" in c for c in set_cookies(r))


def test_return_to_and_forwarded_parameters(httpd, idp, browser_session):
    s = browser_session()
    r = s.get(httpd.url + "/api/auth/login", allow_redirects=False, params={
        "return_to": "/cgi-bin/whoami?text", "organization_id": "org_42", "connection_id": "conn_7",
        "login_hint": "ada@example.com", "domain_hint": "example.com", "provider": "google",
        "prompt": "login", "unknown": "dropped"})
    loc = r.headers["Location"]
    assert loc.startswith(idp.url + "/oauth/authorize?response_type=code&client_id=skc_demo&")
    params = q(loc)
    for k, v in {"organization_id": "org_42", "connection_id": "conn_7", "login_hint": "ada@example.com",
                 "domain_hint": "example.com", "domain": "example.com", "provider": "google",
                 "prompt": "login"}.items():
        assert params[k] == v
    assert "unknown" not in params
    # Scalekit's parameter order (the Node SDK's): a server reading positionally still works.
    names = [k for k, _ in up.parse_qsl(up.urlsplit(loc).query)]
    assert names == ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "login_hint",
                     "domain_hint", "domain", "connection_id", "organization_id", "code_challenge",
                     "code_challenge_method", "provider", "prompt"]
    r = s.get(loc)
    assert r.url == httpd.url + "/cgi-bin/whoami?text"
    assert "SCALEKIT_ORGANIZATION_ID=org_42" in r.text


def test_two_parallel_signins_both_finish(httpd, idp):
    s = requests.Session()
    first = s.get(httpd.url + "/api/auth/login?return_to=/dashboard/", allow_redirects=False)
    second = s.get(httpd.url + "/api/auth/login?return_to=/cgi-bin/whoami", allow_redirects=False)
    cb1 = s.get(first.headers["Location"], allow_redirects=False).headers["Location"]
    cb2 = s.get(second.headers["Location"], allow_redirects=False).headers["Location"]
    # Finish them in the other order: each tab's callback finds its own pending state.
    r2 = s.get(cb2, allow_redirects=False)
    r1 = s.get(cb1, allow_redirects=False)
    assert (r2.status_code, r2.headers["Location"]) == (302, "/cgi-bin/whoami")
    assert (r1.status_code, r1.headers["Location"]) == (302, "/dashboard/")
    assert s.get(httpd.url + "/cgi-bin/whoami").json()["REMOTE_USER"] == "usr_demo001"


def test_pending_signins_are_bounded(httpd):
    s = requests.Session()
    for _ in range(25):
        s.get(httpd.url + "/api/auth/login", allow_redirects=False)
    pending = [c for c in s.cookies if c.name.startswith("sk-state-")]
    assert 1 <= len(pending) <= 5
    # The newest sign-in of them all still finishes.
    r = s.get(httpd.url + "/api/auth/login?return_to=/dashboard/")
    assert r.url == httpd.url + "/dashboard/"


def _callback_url(httpd, s):
    login = s.get(httpd.url + "/api/auth/login", allow_redirects=False)
    return s.get(login.headers["Location"], allow_redirects=False).headers["Location"]


def test_callback_without_state_cookie_is_refused_before_any_token_request(httpd, idp):
    s = requests.Session()
    cb = _callback_url(httpd, s)
    idp.clear_log()
    r = requests.get(cb, allow_redirects=False)                 # another browser: no cookie
    assert r.status_code == 400 and "could not be verified" in r.text
    assert endpoint_calls(idp, "/oauth/token") == []


def test_callback_with_other_state_is_refused(httpd, idp):
    s = requests.Session()
    cb = _callback_url(httpd, s)
    parts = q(cb)
    idp.clear_log()
    state = parts["state"]
    other = state[:10] + ("A" if state[10] != "A" else "B") + state[11:]
    forged = httpd.url + "/api/auth/callback?" + up.urlencode({"code": parts["code"], "state": other})
    assert s.get(forged, allow_redirects=False).status_code == 400
    no_state = httpd.url + "/api/auth/callback?" + up.urlencode({"code": parts["code"]})
    assert s.get(no_state, allow_redirects=False).status_code == 400
    assert endpoint_calls(idp, "/oauth/token") == []


def test_tampered_state_cookie_is_refused(httpd, idp):
    s = requests.Session()
    cb = _callback_url(httpd, s)
    for c in s.cookies:
        if c.name.startswith("sk-state-"):
            v = c.value
            c.value = v[:10] + ("A" if v[10] != "A" else "B") + v[11:]
    idp.clear_log()
    assert s.get(cb, allow_redirects=False).status_code == 400
    assert endpoint_calls(idp, "/oauth/token") == []


def test_replayed_callback_is_refused(httpd, idp):
    s = requests.Session()
    cb = _callback_url(httpd, s)
    jar = requests.utils.dict_from_cookiejar(s.cookies)
    assert s.get(cb, allow_redirects=False).status_code == 302
    replay = requests.get(cb, cookies=jar, allow_redirects=False)   # same cookies as the first time
    assert replay.status_code in (400, 403)
    assert "sk-access-token=ey" not in " ".join(set_cookies(replay))


def test_error_from_scalekit_gives_a_clear_page(httpd, idp):
    s = requests.Session()
    login = s.get(httpd.url + "/api/auth/login", allow_redirects=False)
    state = q(login.headers["Location"])["state"]
    r = s.get(httpd.url + "/api/auth/callback", params={"error": "access_denied", "state": state,
              "error_description": "<script>x</script> user said no"}, allow_redirects=False)
    assert r.status_code == 403
    assert "access_denied" in r.text and "<script>" not in r.text and "&lt;script&gt;" in r.text


def test_silent_signin_falls_back_to_a_prompt(httpd, idp, browser_session):
    s = browser_session()
    r = s.get(httpd.url + "/api/auth/login?prompt=none&return_to=/cgi-bin/whoami")
    assert r.url == httpd.url + "/cgi-bin/whoami" and r.json()["REMOTE_USER"] == "usr_demo001"
    prompts = [e["query"].get("prompt") for e in idp.log() if e["path"] == "/oauth/authorize"]
    assert prompts == [["none"], None]                 # login_required, then a normal sign-in


def test_navigation_redirects_but_api_clients_get_401(httpd):
    url = httpd.url + "/dashboard/"
    nav = requests.get(url, allow_redirects=False, headers={
        "Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
    assert nav.status_code == 302 and "/oauth/authorize?" in nav.headers["Location"]
    for headers in ({"X-Requested-With": "XMLHttpRequest"}, {"Accept": "application/json"},
                    {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}):
        r = requests.get(url, headers=headers, allow_redirects=False)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(url, allow_redirects=False).status_code == 401


def test_return_lands_on_the_original_url(httpd, browser_session):
    s = browser_session()
    r = s.get(httpd.url + "/cgi-bin/whoami?a=1&b=%2F")
    assert r.url == httpd.url + "/cgi-bin/whoami?a=1&b=%2F"
    assert r.json()["REMOTE_USER"] == "usr_demo001"


def test_logout_clears_cookies_and_sends_to_scalekit(httpd, idp, browser_session):
    s = browser_session()
    signin(httpd, s)
    id_token = s.cookies.get("sk-id-token")
    r = s.get(httpd.url + "/api/auth/logout", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == (idp.url + "/oidc/logout?id_token_hint=" + id_token +
                                     "&post_logout_redirect_uri=" + up.quote(httpd.url + "/", safe=""))
    cleared = {c.split("=", 1)[0] for c in set_cookies(r) if "Max-Age=0" in c}
    assert {"sk-access-token", "sk-id-token", "sk-refresh-token"} <= cleared
    s.get(r.headers["Location"])                       # Scalekit ends its session, back to the site
    again = s.get(httpd.url + "/dashboard/", allow_redirects=False)
    assert again.status_code == 302 and "/oauth/authorize" in again.headers["Location"]


def test_access_token_alone_is_a_session(httpd, idp):
    token = idp.mint({}, base="access")
    r = requests.get(httpd.url + "/cgi-bin/whoami", cookies={"sk-access-token": token})
    assert r.status_code == 200
    seen = r.json()
    assert seen["REMOTE_USER"] == "usr_demo001" and "SCALEKIT_EMAIL" not in seen


def test_tokens_of_different_users_are_refused(httpd, idp):
    access = idp.mint({}, base="access")
    other_id = idp.mint({"sub": "usr_other"}, base="id")
    r = requests.get(httpd.url + "/cgi-bin/whoami", allow_redirects=False,
                     cookies={"sk-access-token": access, "sk-id-token": other_id})
    assert r.status_code == 302 and "/oauth/authorize" in r.headers["Location"]


def test_forged_and_foreign_tokens_are_refused(httpd, idp):
    now = int(time.time())
    cases = {
        "other audience": idp.mint({"aud": ["skc_other"]}, base="access"),
        "other issuer": idp.mint({"iss": "https://evil.example"}, base="access"),
        "expired": idp.mint({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}, base="access"),
        "unsigned": idp.mint({}, base="access", sign="none"),
    }
    for why, token in cases.items():
        r = requests.get(httpd.url + "/cgi-bin/whoami", allow_redirects=False,
                         cookies={"sk-access-token": token}, headers={"Accept": "application/json"})
        assert r.status_code == 401, why
    log = httpd.error_log()
    assert "refused: aud" in log or "refused" in log
    for token in cases.values():
        assert token not in log                      # tokens only as short hashes


def expire_access_cookie(idp, s):
    """Swap the session's access token for an expired one of the same user: the next request
    must refresh with the real refresh token (no sleeping on a noisy machine)."""
    now = int(time.time())
    token = idp.mint({"exp": now - 5, "iat": now - 305, "nbf": now - 305}, base="access")
    for c in s.cookies:
        if c.name == "sk-access-token":
            c.value = token
    return token


def short_lived(idp, httpd_factory, mpm="event"):
    return httpd_factory(idp=idp, mpm=mpm, extra_conf="ScalekitLeeway 0\n")


def test_expired_access_token_is_refreshed(idp, httpd_factory, browser_session):
    h = short_lived(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    old_refresh = s.cookies.get("sk-refresh-token")
    old_access = expire_access_cookie(idp, s)
    r = s.get(h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    assert s.cookies.get("sk-access-token") != old_access
    assert s.cookies.get("sk-refresh-token") != old_refresh          # rotated
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_refresh_rotation_under_20_parallel_requests(idp, httpd_factory, mpm):
    h = short_lived(idp, httpd_factory, mpm=mpm)
    s = requests.Session()
    signin(h, s)
    expire_access_cookie(idp, s)
    jar = requests.utils.dict_from_cookiejar(s.cookies)

    def one(_):
        r = requests.get(h.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False)
        return r.status_code, r.json().get("REMOTE_USER") if r.status_code == 200 else None

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert results == [(200, "usr_demo001")] * 20
    refreshes = endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")
    assert len(refreshes) == 1, [e["status"] for e in refreshes]
    assert refreshes[0]["status"] == 200


def test_failed_refresh_clears_the_session(idp, httpd_factory):
    h = short_lived(idp, httpd_factory)
    s = requests.Session()
    signin(h, s)
    # Someone else used the refresh token first (or Scalekit revoked it): invalid_grant.
    used = requests.post(idp.url + "/oauth/token", data={
        "grant_type": "refresh_token", "client_id": idp.client_id, "client_secret": idp.client_secret,
        "refresh_token": s.cookies.get("sk-refresh-token")})
    assert used.status_code == 200
    expire_access_cookie(idp, s)
    r = s.get(h.url + "/dashboard/", allow_redirects=False)
    assert r.status_code == 302 and "/oauth/authorize" in r.headers["Location"]
    cleared = {c.split("=", 1)[0] for c in set_cookies(r) if "Max-Age=0" in c}
    assert {"sk-access-token", "sk-id-token", "sk-refresh-token"} <= cleared
    assert "invalid_grant" in h.error_log()


def test_signin_without_refresh_token_clears_a_previous_one(idp, httpd_factory):
    """Without offline_access the IdP gives no refresh token. A refresh cookie the browser still
    holds (a previous user's, on a shared computer) must go, or the next refresh would sign the
    new user in as the previous one."""
    before = httpd_factory(idp=idp)                  # the same host (cookies ignore the port)
    h = httpd_factory(idp=idp, extra_conf="ScalekitScopes openid profile email\n")
    s = requests.Session()
    signin(before, s)
    assert s.cookies.get("sk-refresh-token")
    r = s.get(h.url + "/api/auth/login", params={"return_to": "/cgi-bin/whoami"})
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    assert s.cookies.get("sk-access-token") and s.cookies.get("sk-refresh-token") is None
    callback = [x for x in r.history if "/api/auth/callback" in x.url]
    assert len(callback) == 1 and "sk-refresh-token" in {
        c.split("=", 1)[0] for c in set_cookies(callback[0]) if "Max-Age=0" in c}


def test_key_rotation_needs_no_restart(idp, httpd_factory, browser_session):
    httpd = httpd_factory(idp=idp, extra_conf="ScalekitJWKSRefreshInterval 1\n")
    s = browser_session()
    signin(httpd, s)
    keys_fetches = len([e for e in idp.log() if e["path"] == "/keys"])
    idp.rotate(keep_old=False)
    time.sleep(1.2)                                # the refetch interval since the first fetch
    s2 = browser_session()
    r = signin(httpd, s2)                          # tokens signed with a kid the module has not seen
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    assert len([e for e in idp.log() if e["path"] == "/keys"]) == keys_fetches + 1


ONE_CHILD = "StartServers 1\nServerLimit 1\nThreadsPerChild 25\nMaxRequestWorkers 25\n"


def test_unknown_kid_burst_is_rate_limited(idp, httpd_factory, browser_session):
    httpd = httpd_factory(idp=idp, mpm="event", extra_conf=ONE_CHILD)  # one process: one key store
    signin(httpd, browser_session())
    fetches = len([e for e in idp.log() if e["path"] == "/keys"])
    bogus = idp.mint({}, base="access", header={"kid": "snk_unknown"})
    for _ in range(30):
        r = requests.get(httpd.url + "/dashboard/", cookies={"sk-access-token": bogus},
                         headers={"Accept": "application/json"})
        assert r.status_code == 401
    assert len([e for e in idp.log() if e["path"] == "/keys"]) <= fetches + 1
    assert "unknown-kid" in httpd.error_log()


def test_php_sees_the_user(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, php=True)
    s = browser_session()
    r = s.get(h.url + "/dashboard/whoami.php")
    assert r.status_code == 200, r.text[:300]
    seen = r.json()
    assert seen["REMOTE_USER"] == "usr_demo001"
    assert seen["SCALEKIT_EMAIL"] == "ada@example.com"
    assert seen["getenv_SCALEKIT_EMAIL"] == "ada@example.com"
    assert not [n for n in seen["COOKIE_NAMES"] if n.startswith("sk-")]   # ScalekitStripCookies


def test_application_never_sees_the_module_cookies(idp, httpd_factory, browser_session):
    """ScalekitStripCookies (default On): the tokens, the session id and a pending sign-in's state
    leave the Cookie header once read; the application's own cookies pass untouched."""
    h = httpd_factory(idp=idp, locations=DEFAULT_LOCATIONS +
                      "ScriptAlias /keep-cgi/ @ROOT@/cgi-bin/\n<Location /keep-cgi>\n"
                      "    AuthType Scalekit\n    Require valid-user\n    ScalekitStripCookies Off\n"
                      "</Location>\n")
    s = browser_session()
    signin(h, s)
    jar = {c.name: c.value for c in s.cookies if c.name.startswith("sk-")}
    jar.update({"app_pref": "dark", "theme": "a=b", "sk-state-0123456789abcdef": "x"})
    r = requests.get(h.url + "/cgi-bin/whoami", cookies=jar)
    seen = r.json()
    assert seen["REMOTE_USER"] == "usr_demo001"
    names = [c.split("=", 1)[0].strip() for c in (seen["HTTP_COOKIE"] or "").split(";")]
    assert sorted(names) == ["app_pref", "theme"], seen["HTTP_COOKIE"]
    assert "theme=a=b" in seen["HTTP_COOKIE"]
    # Only our cookies: no Cookie header at all.
    only = {k: v for k, v in jar.items() if k.startswith("sk-")}
    assert requests.get(h.url + "/cgi-bin/whoami", cookies=only).json()["HTTP_COOKIE"] is None
    # A quoted value of the application's keeps its quotes.
    quoted = requests.get(h.url + "/cgi-bin/whoami", headers={"Cookie": "; ".join(
        ["%s=%s" % kv for kv in only.items()] + ['quoted="v 1"'])}).json()
    assert quoted["REMOTE_USER"] == "usr_demo001" and quoted["HTTP_COOKIE"] == 'quoted="v 1"', quoted
    # Off: everything passes.
    kept = requests.get(h.url + "/keep-cgi/whoami", cookies=jar).json()
    assert kept["REMOTE_USER"] == "usr_demo001" and "sk-access-token=" in kept["HTTP_COOKIE"]


def test_env_vars_publishes_only_what_is_asked(idp, httpd_factory, browser_session):
    """ScalekitEnvVars: only the named SCALEKIT_* variables are set (REMOTE_USER and AUTH_TYPE
    always); one not published is still removed, so a SetEnvIf cannot pass a value off as ours;
    claim headers do not depend on it."""
    spoof = "    SetEnvIf User-Agent . SCALEKIT_SUB=spoofed SCALEKIT_ROLES=admin\n"
    h = httpd_factory(idp=idp, locations=DEFAULT_LOCATIONS +
                      "ScriptAlias /few-cgi/ @ROOT@/cgi-bin/\n<Location /few-cgi>\n"
                      "    AuthType Scalekit\n    Require valid-user\n"
                      "    ScalekitEnvVars email name\n" + spoof + "</Location>\n"
                      "ScriptAlias /no-cgi/ @ROOT@/cgi-bin/\n<Location /no-cgi>\n"
                      "    AuthType Scalekit\n    Require valid-user\n"
                      "    ScalekitEnvVars none\n    ScalekitClaimHeaders X-Scalekit-\n"
                      + spoof + "</Location>\n"
                      "ScriptAlias /open-cgi/ @ROOT@/cgi-bin/\n<Location /open-cgi>\n"
                      + spoof + "</Location>\n"
                      "ScriptAlias /all-cgi/ @ROOT@/cgi-bin/\n<Location /all-cgi>\n"
                      "    AuthType Scalekit\n    Require valid-user\n" + spoof + "</Location>\n")
    headers_cgi = h.root / "cgi-bin" / "headers"
    headers_cgi.write_text("#!/usr/bin/python3\nimport json, os\nprint('Content-Type: application/json\\n')\n"
                           "print(json.dumps({k: v for k, v in os.environ.items() "
                           "if k.startswith('HTTP_X_SCALEKIT_')}))\n")
    headers_cgi.chmod(0o755)
    s = browser_session()
    signin(h, s)
    # The spoof is live where the module does not run.
    assert s.get(h.url + "/open-cgi/whoami").json()["SCALEKIT_SUB"] == "spoofed"
    full = s.get(h.url + "/cgi-bin/whoami").json()
    assert {"SCALEKIT_SUB", "SCALEKIT_EMAIL", "SCALEKIT_NAME"} <= set(full), full
    # Every variable (the default) over a spoof: each of ours replaces the spoofed one.
    assert s.get(h.url + "/all-cgi/whoami").json() == full
    few = s.get(h.url + "/few-cgi/whoami").json()
    assert few["REMOTE_USER"] == "usr_demo001" and few["AUTH_TYPE"] == "Scalekit"
    assert sorted(k for k in few if k.startswith("SCALEKIT_")) == ["SCALEKIT_EMAIL", "SCALEKIT_NAME"], few
    assert few["SCALEKIT_EMAIL"] == full["SCALEKIT_EMAIL"]
    none = s.get(h.url + "/no-cgi/whoami").json()
    assert none["REMOTE_USER"] == "usr_demo001"
    assert not [k for k in none if k.startswith("SCALEKIT_")], none
    hdrs = s.get(h.url + "/no-cgi/headers").json()
    assert hdrs.get("HTTP_X_SCALEKIT_SUB") == full["SCALEKIT_SUB"], hdrs
    assert hdrs.get("HTTP_X_SCALEKIT_EMAIL") == full["SCALEKIT_EMAIL"], hdrs


def test_https_identity_provider_with_private_ca(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, idp_https=True)
    s = browser_session(ca=idp.ca)
    r = s.get(h.url + "/cgi-bin/whoami")
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    assert all(e["listener"] == "https" for e in idp.log() if e["path"] in ("/keys", "/oauth/token"))


def test_https_identity_provider_untrusted_is_refused(idp, httpd_factory, browser_session):
    conf = ("ScalekitEnvironmentURL %s\nScalekitClientID %s\nScalekitClientSecret %s\n"
            "ScalekitRedirectURI @URL@/api/auth/callback\n" % (idp.https_url, idp.client_id, idp.client_secret))
    h = httpd_factory(idp=idp, scalekit_conf=conf)          # no ScalekitCAFile: the CA is not trusted
    s = browser_session(ca=idp.ca)
    r = s.get(h.url + "/cgi-bin/whoami")
    assert r.status_code == 502
    assert re.search(r"token endpoint .* unreachable: .*(certificate|SSL)", h.error_log())
