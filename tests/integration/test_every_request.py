# SPDX-License-Identifier: Apache-2.0
"""What holds on every request of a server that uses mod_scalekit, not only where its authentication
hook runs: httpd skips that hook when authorization grants without a user ("Require all granted", or
"Require ip" in a RequireAny), and a location may not use AuthType Scalekit at all.

  - a client's claim-header look-alikes (the location's ScalekitClaimHeaders prefix, and Scalekit-*)
    never reach the application (header_parser);
  - the module's cookies (tokens, session id, sign-in state) never reach it either, protected
    location or not, CGI, PHP or proxied backend (fixups), unless ScalekitStripCookies Off;
  - the module still reads them itself afterwards: its handler, an internal redirect (ErrorDocument)
    or a DirectoryIndex subrequest to a protected location;
  - a response that sets the module's cookies on an ordinary page (a refresh) is Cache-Control
    private, keeping an application's stricter no-store;
  - claim values in the error log are made safe as in the environment.
"""
import json
import re

import requests

from test_security import ENVDUMP_CGI, NAV, follow_signin, loc, raw_request, with_envdump
from test_signin import expire_access_cookie, set_cookies, signin

HANDLER = loc("/api/auth", " SetHandler scalekit\n")
FORGED = [("X-Scalekit-Sub", "admin"), ("x_scalekit_email", "mallory@evil.example"),
          ("Scalekit-Roles", "superadmin"), ("X-SCALEKIT-ORGANIZATION-ID", "org_mallory")]
OURS = {"sk-access-token": "a.b.c", "sk-id-token": "i.d.t", "sk-refresh-token": "rt_secret_refresh",
        "sk-session": "sess_secret", "sk-state-0123456789abcdef": "pending",
        "sk-profile": "sealed_profile"}
APP_COOKIE = "app_pref=dark"


def cookie_line(extra=()):
    return "; ".join(["%s=%s" % kv for kv in OURS.items()] + [APP_COOKIE] + list(extra))


def dump(h, path, cookies=None, headers=()):
    """The envdump CGI's view of a request from 127.0.0.1 with the forged headers and our cookies."""
    hdrs = list(FORGED) + [("Accept", "application/json"), ("Cookie", cookies or cookie_line())] + list(headers)
    status, _, body = raw_request(h, path, hdrs)
    assert status == 200, (path, status, body[:300])
    return {k: bytes.fromhex(v).decode("latin-1") for k, v in json.loads(body).items()}


def assert_clean(env, where):
    forged = {k: v for k, v in env.items() if k.startswith(("HTTP_X_SCALEKIT_", "HTTP_SCALEKIT_"))
              and ("admin" in v or "mallory" in v)}
    assert forged == {}, (where, forged)
    cookie = env.get("HTTP_COOKIE", "")
    assert "sk-" not in cookie and "rt_secret_refresh" not in cookie and "sess_secret" not in cookie, (where, cookie)
    assert "sealed_profile" not in cookie, (where, cookie)
    assert APP_COOKIE in cookie, (where, cookie)              # the application's own cookie stays


GRANTED = " AuthType Scalekit\n ScalekitClaimHeaders X-Scalekit-\n Require all granted\n"
ANY = (" AuthType Scalekit\n ScalekitClaimHeaders X-Scalekit-\n <RequireAny>\n  Require ip 127.0.0.1\n"
       "  Require valid-user\n </RequireAny>\n")


def every_request_server(idp, httpd_factory, extra_conf=""):
    aliases = "".join("ScriptAlias /%s @ROOT@/cgi-bin/envdump\n" % n
                      for n in ("granted", "any", "plain", "plainhdr", "keep"))
    locations = (HANDLER + loc("/cgi-bin", " AuthType Scalekit\n Require valid-user\n") + aliases +
                 loc("/granted", GRANTED) + loc("/any", ANY) +
                 loc("/plainhdr", " ScalekitClaimHeaders X-Scalekit-\n") +
                 loc("/keep", GRANTED + " ScalekitStripCookies Off\n"))
    return with_envdump(httpd_factory(idp=idp, locations=locations, extra_conf=extra_conf))


def test_require_all_granted_gets_no_lookalike_and_no_module_cookie(idp, httpd_factory):
    h = every_request_server(idp, httpd_factory)
    env = dump(h, "/granted")
    assert env.get("REMOTE_USER", "") == ""                   # no user: authentication never ran
    assert_clean(env, "/granted")


def test_require_any_ip_or_user_gets_no_lookalike_and_no_module_cookie(idp, httpd_factory):
    """The README's "local tools or a signed-in user" pattern: from 127.0.0.1 the ip rule grants."""
    h = every_request_server(idp, httpd_factory)
    assert_clean(dump(h, "/any"), "/any")


def test_location_without_authtype_scalekit(idp, httpd_factory):
    """The module's cookies go on every request of the server; a location with ScalekitClaimHeaders
    alone (no AuthType) is scrubbed of the look-alikes too."""
    h = every_request_server(idp, httpd_factory)
    env = dump(h, "/plain")
    cookie = env.get("HTTP_COOKIE", "")
    assert "sk-" not in cookie and "rt_secret_refresh" not in cookie and APP_COOKIE in cookie, cookie
    assert env.get("HTTP_X_SCALEKIT_SUB") == "admin"          # no prefix here: not the module's business
    assert_clean(dump(h, "/plainhdr"), "/plainhdr")
    # Only our cookies: no Cookie header at all.
    status, _, body = raw_request(h, "/plain", [("Cookie", "; ".join("%s=%s" % kv for kv in OURS.items()))])
    assert status == 200 and b"HTTP_COOKIE" not in body, body[:300]


def test_strip_cookies_off_keeps_them(idp, httpd_factory):
    h = every_request_server(idp, httpd_factory)
    env = dump(h, "/keep")
    assert "sk-refresh-token=rt_secret_refresh" in env["HTTP_COOKIE"], env["HTTP_COOKIE"]
    assert "admin" not in env.get("HTTP_X_SCALEKIT_SUB", "")  # the look-alikes still go


def test_module_reads_its_cookies_after_stripping(idp, httpd_factory, browser_session):
    """Stripped before the handler, yet the module's own later reads see them: an ErrorDocument
    internal redirect from an open location to a protected CGI, a DirectoryIndex subrequest, and the
    sign-in handler (its state cookie). The application never does."""
    extra = ("<Location /open>\n Require all granted\n</Location>\n"
             "Alias /open @DOCROOT@/public\n"
             "ErrorDocument 404 /cgi-bin/envdump\n"
             "Alias /idx @ROOT@/idx\n<Directory @ROOT@/idx>\n Options +ExecCGI\n AddHandler cgi-script .cgi\n"
             " DirectoryIndex index.cgi\n AuthType Scalekit\n ScalekitClaimHeaders X-Scalekit-\n"
             " Require valid-user\n</Directory>\n")
    h = every_request_server(idp, httpd_factory, extra_conf=extra)
    (h.root / "idx").mkdir()
    (h.root / "idx" / "index.cgi").write_text(ENVDUMP_CGI)
    (h.root / "idx" / "index.cgi").chmod(0o755)
    (h.root / "idx").chmod(0o755)
    s = browser_session()
    signin(h, s)                     # the callback read its state cookie after the fixups hook ran
    jar = "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies) + "; " + APP_COOKIE
    for path in ("/open/missing", "/idx/"):
        status, _, body = raw_request(h, path, list(FORGED) + [("Accept", "application/json"), ("Cookie", jar)])
        assert status in (200, 404), (path, status, body[:300])   # ErrorDocument keeps the 404 status
        env = {k: bytes.fromhex(v).decode("latin-1") for k, v in json.loads(body).items()}
        assert env.get("REMOTE_USER") == "usr_demo001", (path, env)
        assert "sk-" not in env.get("HTTP_COOKIE", "") and APP_COOKIE in env.get("HTTP_COOKIE", ""), (path, env)
        if path == "/idx/":                  # claim headers here: the module's own, none forged
            assert env["HTTP_X_SCALEKIT_SUB"] == "usr_demo001", env
            assert "mallory" not in str(env) and "superadmin" not in str(env), (path, env)


def test_protected_request_is_stripped_before_other_fixups(idp, httpd_factory, browser_session):
    """A protected request loses the module's cookies where the module reads them (authentication),
    so no fixup of another module (here mod_headers copying the Cookie header) sees the tokens."""
    copy = ("ScriptAlias /copy @ROOT@/cgi-bin/envdump\n<Location /copy>\n AuthType Scalekit\n"
            " Require valid-user\n RequestHeader set X-Copied-Cookie \"expr=%{req:Cookie}\"\n</Location>\n")
    h = with_envdump(httpd_factory(idp=idp, locations=HANDLER, extra_conf=copy))
    s = browser_session()
    signin(h, s)
    jar = "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies) + "; " + APP_COOKIE
    status, _, body = raw_request(h, "/copy", [("Accept", "application/json"), ("Cookie", jar)])
    assert status == 200, (status, body[:300])
    env = {k: bytes.fromhex(v).decode("latin-1") for k, v in json.loads(body).items()}
    assert env.get("REMOTE_USER") == "usr_demo001", env
    copied = env.get("HTTP_X_COPIED_COOKIE", "")
    assert APP_COOKIE in copied, env                        # the copy was made
    assert "sk-" not in copied, copied
    assert "sk-" not in env.get("HTTP_COOKIE", "") and APP_COOKIE in env.get("HTTP_COOKIE", ""), env


HEADERS_CGI = """#!/usr/bin/python3
import json, os
print("Content-Type: application/json\\n")
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("HTTP_") or k == "REMOTE_USER"}))
"""


def test_proxied_backend_sees_no_lookalike_and_no_module_cookie(idp, httpd_factory):
    locations = (HANDLER + "ProxyPass /papp http://127.0.0.1:@PORT1@/cgi-bin/headers\n" +
                 "ProxyPass /popen http://127.0.0.1:@PORT1@/cgi-bin/headers\n" +
                 loc("/papp", ANY) +
                 "<VirtualHost 127.0.0.1:@PORT1@>\n ScriptAlias /cgi-bin/ @ROOT@/cgi-bin/\n</VirtualHost>\n")
    h = httpd_factory(idp=idp, locations=locations, proxy=True, extra_ports=1)
    cgi = h.root / "cgi-bin" / "headers"
    cgi.write_text(HEADERS_CGI)
    cgi.chmod(0o755)
    for path in ("/papp", "/popen"):
        status, _, body = raw_request(h, path, list(FORGED) + [("Cookie", cookie_line())])
        assert status == 200, (path, status, body[:300])
        seen = json.loads(body)
        cookie = seen.get("HTTP_COOKIE", "")
        assert "sk-" not in cookie and "rt_secret_refresh" not in cookie and APP_COOKIE in cookie, (path, seen)
        if path == "/papp":
            assert not [k for k, v in seen.items() if "admin" in v or "mallory" in v], seen


def test_php_on_an_open_location_sees_no_module_cookie(idp, httpd_factory):
    h = httpd_factory(idp=idp, php=True)
    (h.docroot / "public" / "whoami.php").write_text((h.docroot / "dashboard" / "whoami.php").read_text())
    r = requests.get(h.url + "/public/whoami.php", headers={"Cookie": cookie_line()})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["COOKIE_NAMES"] == ["app_pref"], r.json()


# ------------------------------------------------------------------------------------------------
# A response that sets the module's cookies is private to the browser
# ------------------------------------------------------------------------------------------------

CACHE_CGI = """#!/usr/bin/python3
import os
cc = os.environ.get("QUERY_STRING", "")
print("Content-Type: text/plain")
if cc:
    print("Cache-Control: " + cc.replace("%20", " ").replace("%2C", ","))
print()
print("ok")
"""


def cache_control(r):
    return [v for k, v in r.raw.headers.items() if k.lower() == "cache-control"]


def test_refresh_response_is_private(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n")
    cgi = h.root / "cgi-bin" / "cache"
    cgi.write_text(CACHE_CGI)
    cgi.chmod(0o755)
    s = browser_session()
    signin(h, s)
    plain = s.get(h.url + "/cgi-bin/cache?public%2C%20max-age=600", allow_redirects=False)
    assert cache_control(plain) == ["public, max-age=600"]      # no cookie set: the application's say
    for query, want in (("", "private"), ("public%2C%20max-age=600", "private, max-age=600"),
                        ("no-store", "no-store")):
        expire_access_cookie(idp, s)
        r = s.get(h.url + "/cgi-bin/cache?" + query, allow_redirects=False)
        assert r.status_code == 200, r.text[:300]
        assert any(c.startswith("sk-access-token=") for c in set_cookies(r)), set_cookies(r)
        assert cache_control(r) == [want], (query, cache_control(r))
    # The sign-in handler's pages were no-store already, and stay so.
    r = requests.get(h.url + "/api/auth/login", allow_redirects=False)
    assert r.status_code == 302 and cache_control(r) == ["no-store"], cache_control(r)


def test_refresh_answered_by_an_error_document_is_private(idp, httpd_factory, browser_session):
    """A refresh on a request that ends in an ErrorDocument (an internal redirect, with a filter
    chain of its own): the page that carries the new cookies is private too."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n"
                      "ErrorDocument 404 /cgi-bin/cache?public%2C%20max-age=600\n")
    cgi = h.root / "cgi-bin" / "cache"
    cgi.write_text(CACHE_CGI)
    cgi.chmod(0o755)
    s = browser_session()
    signin(h, s)
    expire_access_cookie(idp, s)
    r = s.get(h.url + "/dashboard/no-such-page.html", allow_redirects=False)
    assert r.status_code == 404 and "ok" in r.text, (r.status_code, r.text[:300])
    assert any(c.startswith("sk-access-token=") for c in set_cookies(r)), set_cookies(r)
    assert cache_control(r) == ["private, max-age=600"], cache_control(r)


# ------------------------------------------------------------------------------------------------
# Claim values in the error log
# ------------------------------------------------------------------------------------------------

def test_claim_values_in_the_log_are_made_safe(idp, httpd_factory):
    """A sub with CR/LF and other control bytes is logged as REMOTE_USER shows it ('?' for each),
    never raw, and never as httpd's own escape of it (which another tool could unescape)."""
    h = with_envdump(httpd_factory(idp=idp, loglevel="warn scalekit:trace1"))
    idp.set_user(sub="usr_demo001\nFAKE LOG LINE\r\x1b[31m", email="ada@example.com")
    s = requests.Session()
    r = s.get(h.url + "/api/auth/login?return_to=/cgi-bin/envdump", allow_redirects=False)
    assert follow_signin(s, r).status_code == 302
    env = s.get(h.url + "/cgi-bin/envdump", headers={"Accept": "application/json"}).json()
    user = bytes.fromhex(env["REMOTE_USER"]).decode()
    assert user == "usr_demo001?FAKE LOG LINE??[31m", user
    log = h.error_log()
    assert "signed in: " + user in log, log[-2000:]
    assert "session valid: " + user in log, log[-2000:]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", log)
    assert not re.search(r"^\s*FAKE", log, re.M)
    assert "\\x1b" not in log and "\\n" not in log, "an escaped control byte reached the log"
