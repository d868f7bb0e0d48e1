# SPDX-License-Identifier: Apache-2.0
"""Apache-native behaviour: Require providers, bearer tokens for APIs, the unauthenticated
action per location (with an ap_expr override), claims as request headers for proxied
applications, and the session endpoint."""
import json

import requests

from test_signin import q, signin

PROTECT = "AuthType Scalekit\n"


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


def api_server(idp, httpd_factory, extra_locations="", **kw):
    locations = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n" +
                 loc("/cgi-bin", PROTECT + "ScalekitBearer On\nRequire valid-user\n") + extra_locations)
    return httpd_factory(idp=idp, locations=locations, **kw)


def get(h, path, token=None, cookies=None, **headers):
    if token:
        headers["Authorization"] = "Bearer " + token
    return requests.get(h.url + path, headers=headers, cookies=cookies, allow_redirects=False)


def test_require_providers_grant_and_refuse(idp, httpd_factory):
    rules = {
        "/cgi-bin/whoami": "Require scalekit-role admin editor\n",
    }
    locations = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n" +
                 "".join(loc(p, PROTECT + "ScalekitBearer On\n" + r) for p, r in rules.items()))
    h = httpd_factory(idp=idp, locations=locations)
    admin = idp.mint({}, base="access")
    viewer = idp.mint({"roles": ["viewer"]}, base="access")
    assert get(h, "/cgi-bin/whoami", admin).status_code == 200
    r = get(h, "/cgi-bin/whoami", viewer)
    assert r.status_code == 403
    assert "needs scalekit-role admin editor" in h.error_log()


def test_each_provider(idp, httpd_factory):
    cases = [
        ("Require scalekit-organization org_demo org_other", {}, 200),
        ("Require scalekit-organization org_other", {}, 403),
        ("Require scalekit-permission invoices:read", {}, 200),
        ("Require scalekit-permission invoices:delete", {}, 403),
        ("Require scalekit-claim xoid ext_1", {"xoid": "ext_1"}, 200),
        ("Require scalekit-claim tier 3", {"tier": 3}, 200),
        ("Require scalekit-claim tier 3", {"tier": "4"}, 403),
        ("Require scalekit-claim beta true", {"beta": True}, 200),
        ("Require scalekit-claim beta true", {"beta": False}, 403),
        ("Require scalekit-claim groups ops", {"groups": ["dev", "ops"]}, 200),
        ("Require scalekit-claim groups ops", {"groups": []}, 403),
        ("Require scalekit-scope invoices:read", {"scope": "openid invoices:read"}, 200),
        ("Require scalekit-scope invoices:write", {"scope": "openid invoices:read"}, 403),
    ]
    locations = "<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
    for i, (rule, _, _) in enumerate(cases):
        locations += "ScriptAlias /t%d @ROOT@/cgi-bin/whoami\n" % i
        locations += loc("/t%d" % i, PROTECT + "ScalekitBearer On\n" + rule + "\n")
    h = httpd_factory(idp=idp, locations=locations)
    for i, (rule, claims, want) in enumerate(cases):
        assert get(h, "/t%d" % i, idp.mint(claims, base="access")).status_code == want, rule


def test_require_all_and_any_compose(idp, httpd_factory):
    locations = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n" + loc("/cgi-bin", PROTECT +
                 "ScalekitBearer On\n<RequireAll>\n  Require scalekit-organization org_demo\n"
                 "  <RequireAny>\n    Require scalekit-role admin\n    Require scalekit-permission reports:read\n"
                 "  </RequireAny>\n</RequireAll>\n"))
    h = httpd_factory(idp=idp, locations=locations)
    assert get(h, "/cgi-bin/whoami", idp.mint({}, base="access")).status_code == 200
    assert get(h, "/cgi-bin/whoami", idp.mint({"roles": [], "permissions": ["reports:read"]},
                                              base="access")).status_code == 200
    assert get(h, "/cgi-bin/whoami", idp.mint({"roles": [], "permissions": []}, base="access")).status_code == 403
    assert get(h, "/cgi-bin/whoami", idp.mint({"oid": "org_x"}, base="access")).status_code == 403


def test_bearer_tokens_user_and_machine(idp, httpd_factory):
    h = api_server(idp, httpd_factory, extra_conf="ScalekitAudience skc_machine\n")
    r = get(h, "/cgi-bin/whoami", idp.mint({}, base="access"))
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    # A machine token from client_credentials: sub is the client, scopes an array; aud the
    # audience its API client was registered with (without one it has none:
    # test_documented_shapes.py).
    idp.add_client("skc_machine", "machine-secret", audience=["skc_machine"])
    t = requests.post(idp.url + "/oauth/token", data={"grant_type": "client_credentials",
                      "client_id": "skc_machine", "client_secret": "machine-secret", "scope": "invoices:read"})
    machine = t.json()["access_token"]
    r = get(h, "/cgi-bin/whoami", machine)
    assert r.status_code == 200, h.error_log()[-2000:]
    assert r.json()["REMOTE_USER"] == "skc_machine"
    assert r.json()["SCALEKIT_SCOPE"] == "invoices:read"
    # Invalid bearer: 401 with error=invalid_token, never a redirect to sign in.
    r = get(h, "/cgi-bin/whoami", "garbage.token.here", Accept="text/html")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_bearer_is_ignored_where_not_enabled(httpd, idp):
    r = get(httpd, "/cgi-bin/whoami", idp.mint({}, base="access"), Accept="application/json")
    assert r.status_code == 401


def test_unauth_actions(idp, httpd_factory):
    locations = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
                 "ScriptAlias /pass @ROOT@/cgi-bin/whoami\nScriptAlias /api @ROOT@/cgi-bin/whoami\n"
                 "ScriptAlias /always @ROOT@/cgi-bin/whoami\nScriptAlias /expr @ROOT@/cgi-bin/whoami\n"
                 "ScriptAlias /auto @ROOT@/cgi-bin/whoami\n" + loc("/auto", PROTECT + "Require valid-user\n") +
                 loc("/pass", PROTECT + "ScalekitUnauthAction pass\nRequire valid-user\n") +
                 loc("/api", PROTECT + "ScalekitUnauthAction 401\nRequire valid-user\n") +
                 loc("/always", PROTECT + "ScalekitUnauthAction login\nRequire valid-user\n") +
                 loc("/expr", PROTECT + "ScalekitLoginIf \"%{HTTP:X-App} == 'web'\"\nRequire valid-user\n"))
    h = httpd_factory(idp=idp, locations=locations)
    r = get(h, "/pass")                                     # public page: no user, no redirect
    assert r.status_code == 200 and not r.json()["REMOTE_USER"] and "SCALEKIT_SUB" not in r.json()
    r = get(h, "/pass", cookies={"sk-access-token": idp.mint({}, base="access")})
    assert r.json()["REMOTE_USER"] == "usr_demo001"          # and the variables when signed in
    assert get(h, "/api", Accept="text/html").status_code == 401
    assert get(h, "/always", Accept="application/json").status_code == 302
    assert get(h, "/expr", Accept="text/html").status_code == 401
    assert get(h, "/expr", Accept="application/json", **{"X-App": "web"}).status_code == 302
    assert get(h, "/auto", **{"Sec-Fetch-Mode": "cors"}).status_code == 401        # default rule
    assert get(h, "/auto", Accept="text/html").status_code == 302
    r = requests.options(h.url + "/api", headers={"Origin": "http://x", "Access-Control-Request-Method": "GET"},
                         allow_redirects=False)
    assert r.status_code == 401                              # CORS preflight: never a redirect


HEADERS_CGI = """#!/usr/bin/python3
import json, os
print("Content-Type: application/json\\n")
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("HTTP_") or k == "REMOTE_USER"}))
"""


def test_claims_as_headers_for_proxied_app(idp, httpd_factory):
    locations = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
                 "ProxyPass /app http://127.0.0.1:@PORT1@/cgi-bin/headers\n" +
                 loc("/app", PROTECT + "ScalekitBearer On\nScalekitClaimHeaders X-Scalekit-\nRequire valid-user\n") +
                 "<VirtualHost 127.0.0.1:@PORT1@>\n"
                 " ScriptAlias /cgi-bin/ @ROOT@/cgi-bin/\n</VirtualHost>\n")
    h = httpd_factory(idp=idp, locations=locations, proxy=True, extra_ports=1)
    cgi = h.root / "cgi-bin" / "headers"
    cgi.write_text(HEADERS_CGI)
    cgi.chmod(0o755)
    token = idp.mint({"email": "ada@example.com", "name": "Ada\r\nX-Injected: 1"}, base="access")
    r = get(h, "/app", token, **{"X-Scalekit-Email": "mallory@evil.example", "x_scalekit_sub": "usr_mallory",
                                 "X-SCALEKIT-ROLES": "superadmin", "X-Scalekit-Extra": "forged"})
    assert r.status_code == 200, r.text[:500]
    seen = r.json()
    assert seen["HTTP_X_SCALEKIT_SUB"] == "usr_demo001"
    assert seen["HTTP_X_SCALEKIT_EMAIL"] == "ada@example.com"
    assert seen["HTTP_X_SCALEKIT_ROLES"] == "admin"
    assert seen["HTTP_X_SCALEKIT_NAME"] == "Ada??X-Injected: 1"        # CR/LF made safe
    assert "HTTP_X_SCALEKIT_EXTRA" not in seen and "HTTP_X_INJECTED" not in seen
    text = json.dumps(seen)
    assert "mallory" not in text and "superadmin" not in text and "forged" not in text


def test_session_endpoint(httpd, idp, browser_session):
    r = requests.get(httpd.url + "/api/auth/session")
    assert r.status_code == 401 and r.json() == {"authenticated": False}
    s = browser_session()
    signin(httpd, s)
    r = s.get(httpd.url + "/api/auth/session")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["authenticated"] is True and body["sub"] == "usr_demo001"
    assert body["email"] == "ada@example.com" and body["name"] == "Ada Lovelace"
    assert body["access_token_claims"]["roles"] == ["admin"]


def test_two_applications_share_one_scalekit_session(idp, httpd_factory, browser_session):
    app = httpd_factory(idp=idp)
    docs = httpd_factory(idp=idp, extra_conf="ScalekitCookieNames docs-at docs-id docs-rt docs-state-\n"
                         "<Location /dashboard>\n ScalekitSilentLogin On\n</Location>\n")
    idp.set_auto_login(False)             # a sign-in page would need a person: silence is the proof
    s = browser_session()
    r = s.get(docs.url + "/dashboard/", allow_redirects=False)
    first = s.get(r.headers["Location"], allow_redirects=False)       # no Scalekit session yet
    assert "prompt=none" in r.headers["Location"]
    assert "error=login_required" in first.headers["Location"]
    back = s.get(first.headers["Location"], allow_redirects=False)    # docs retries with a prompt
    assert back.status_code == 302 and "prompt=none" not in back.headers["Location"]
    idp.set_auto_login(True)
    assert s.get(app.url + "/cgi-bin/whoami").json()["REMOTE_USER"] == "usr_demo001"   # signs in on app
    idp.set_auto_login(False)
    r = s.get(docs.url + "/dashboard/")                                # silently signed in on docs
    assert r.status_code == 200 and r.url == docs.url + "/dashboard/", r.text[:300]
    assert s.cookies.get("docs-at")


def test_idp_initiated_sign_in(httpd, idp):
    token = idp.idp_initiated(connection_id="conn_9", organization_id="org_9", login_hint="ada@example.com",
                              relay_state="/cgi-bin/whoami")
    s = requests.Session()
    r = s.get(httpd.url + "/api/auth/login", params={"idp_initiated_login": token}, allow_redirects=False)
    assert r.status_code == 302
    params = q(r.headers["Location"])
    assert params["connection_id"] == "conn_9" and params["organization_id"] == "org_9"
    assert params["login_hint"] == "ada@example.com" and "state" in params and "code_challenge" in params
    done = s.get(r.headers["Location"])
    assert done.url == httpd.url + "/cgi-bin/whoami"
    forged = idp.mint({"connection_id": "conn_x"}, base="access", sign="bad")
    assert requests.get(httpd.url + "/api/auth/login", params={"idp_initiated_login": forged},
                        allow_redirects=False).status_code == 400
