# SPDX-License-Identifier: Apache-2.0
"""Production shapes: HTTPS with HTTP/2, a TLS-terminating proxy in front, one virtual host with
several names, WebSocket applications. (Chromium over https: tests/integration/test_browser.py.)"""
import json
import subprocess
import time
import urllib.parse

import pytest
import requests

from httpd import DEFAULT_LOCATIONS, Httpd


def set_cookies(r):
    """The Set-Cookie header lines of a requests response, unjoined."""
    return r.raw.headers.getlist("Set-Cookie")


def cookie_line(r, name):
    lines = [c for c in set_cookies(r) if c.startswith(name + "=")]
    assert lines, "no %s cookie in %s" % (name, set_cookies(r))
    return lines[0]


def attrs(line):
    return [a.strip().lower() for a in line.split(";")[1:]]


# ---------------------------------------------------------------- https and HTTP/2

def test_signin_over_https_cookies_secure_and_h2(idp, httpd_factory, browser_session):
    """The site on https (mod_ssl, Protocols h2 http/1.1), the IdP on https: a full sign-in; every
    cookie the module sets is Secure with ScalekitCookieSecure at its default (auto); curl talks
    HTTP/2 to the protected page with the session (HTTP/1.1 under prefork, where mod_http2 is
    inactive)."""
    h = httpd_factory(idp=idp, idp_https=True, tls=True)
    s = browser_session(ca=h.ca)
    s.verify = bundle(h, idp)
    r = s.get(h.url + "/api/auth/login?return_to=/dashboard/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(idp.https_url)
    assert all("secure" in attrs(c) for c in set_cookies(r)), set_cookies(r)
    r = s.get(r.headers["Location"])
    assert r.status_code == 200 and r.url == h.url + "/dashboard/", r.url
    callback = r.history[-1]
    assert all("secure" in attrs(c) for c in set_cookies(callback)), set_cookies(callback)
    cookie = "sk-access-token=" + s.cookies.get("sk-access-token")
    out = subprocess.run(["curl", "-s", "--http2", "--cacert", h.ca, "-H", "Cookie: " + cookie,
                          "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          h.url + "/dashboard/"], capture_output=True, text=True, timeout=30).stdout
    assert out == ("1.1 200" if h.mpm == "prefork" else "2 200"), out


def bundle(h, idp):
    """One CA file for requests: the site's throw-away CA and the IdP's."""
    path = h.root / "both-ca.pem"
    path.write_text(open(h.ca).read() + open(idp.ca).read())
    return str(path)


def test_host_prefixed_cookies_are_secure_on_plain_http(idp, httpd_factory, browser_session):
    """__Host- names make every cookie Secure even where the module sees plain http (behind a
    TLS-terminating proxy): without it the browser would drop them."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitCookieNames __Host-a __Host-i __Host-r "
                                          "__Host-s- __Host-sess")
    s = browser_session()
    r = s.get(h.url + "/api/auth/login?return_to=/dashboard/", allow_redirects=False)
    line = [c for c in set_cookies(r) if c.startswith("__Host-s-")][0]
    assert "secure" in attrs(line) and "path=/" in attrs(line), line
    assert not any(a.startswith("domain=") for a in attrs(line)), line


# ---------------------------------------------------------------- one virtual host, several names

MULTI_NAME_VHOST = """
<VirtualHost 127.0.0.1:@PORT@>
    ServerName localhost
    ServerAlias 127.0.0.1
    %s
    %s
</VirtualHost>
"""


def multi_name_conf(idp, client_id, secret, redirect="/api/auth/callback"):
    return ("ScalekitEnvironmentURL %s\nScalekitClientID %s\nScalekitClientSecret %s\n"
            "ScalekitRedirectURI %s\n" % (idp.url, client_id, secret, redirect))


def authorize_params(location):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def sign_in(s, base, start="/dashboard/"):
    """A browser's sign-in on base through the auto-login IdP: the final response."""
    r = s.get(base + start, headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    first = r
    r = s.get(r.headers["Location"])
    return first, r


def test_redirect_uri_path_serves_every_name_of_the_host(idp, httpd_factory, browser_session):
    """ScalekitRedirectURI /api/auth/callback on a server named localhost with ServerAlias
    127.0.0.1: each name signs in with its own callback URL (both registered at the IdP, which
    refuses any other), and the code exchange sends the same redirect_uri as the authorize request
    (the IdP refuses a mismatch)."""
    h = httpd_factory(idp=idp, scalekit_conf="", locations="", extra_conf=MULTI_NAME_VHOST % (
        multi_name_conf(idp, "skc_multi", "multi-secret"), DEFAULT_LOCATIONS))
    names = {"localhost": "http://localhost:%d" % h.port, "127.0.0.1": "http://127.0.0.1:%d" % h.port}
    idp.add_client("skc_multi", "multi-secret",
                   redirect_uris=[base + "/api/auth/callback" for base in names.values()])
    for base in names.values():
        s = browser_session()
        first, r = sign_in(s, base)
        assert authorize_params(first.headers["Location"])["redirect_uri"] == base + "/api/auth/callback"
        assert r.status_code == 200 and r.url == base + "/dashboard/", (r.url, r.text[:300])
        assert r.history[-1].url.startswith(base + "/api/auth/callback?")
        token_calls = [e for e in idp.log() if e.get("path") == "/oauth/token"]
        assert token_calls, idp.log()[-3:]
    # Sign-out comes back to the name it was asked on.
    r = s.get(names["127.0.0.1"] + "/api/auth/logout", allow_redirects=False)
    assert r.status_code == 302
    assert authorize_params(r.headers["Location"])["post_logout_redirect_uri"] == names["127.0.0.1"] + "/"


@pytest.mark.parametrize("path", ["/dashboard/", "/api/auth/login?return_to=/dashboard/",
                                  "/api/auth/logout"])
def test_redirect_uri_path_refuses_a_host_not_served(idp, httpd_factory, path):
    """A Host that is neither ServerName nor ServerAlias (name-based virtual hosting hands it to
    the default server) gets a 400: it never goes into a callback URL, a Location or the page."""
    h = httpd_factory(idp=idp, scalekit_conf=multi_name_conf(idp, idp.client_id, idp.client_secret))
    r = requests.get("http://127.0.0.1:%d%s" % (h.port, path), allow_redirects=False,
                     headers={"Host": "evil.example:%d" % h.port, "Accept": "text/html"})
    assert r.status_code == 400, (r.status_code, r.headers)
    assert "Location" not in r.headers and "evil" not in r.text.lower()
    assert not [c for c in set_cookies(r) if c.startswith("sk-state-")]
    assert "Host 'evil.example' is not a ServerName or ServerAlias" in h.error_log()
    # The names it serves still work.
    ok = requests.get(h.url + "/dashboard/", allow_redirects=False, headers={"Accept": "text/html"})
    assert ok.status_code == 302 and "redirect_uri=http%3A%2F%2Flocalhost%3A" in ok.headers["Location"]


def test_absolute_redirect_uri_ignores_the_host(idp, httpd_factory):
    """An absolute ScalekitRedirectURI is sent as written, whatever Host the request names."""
    h = httpd_factory(idp=idp)
    r = requests.get("http://127.0.0.1:%d/dashboard/" % h.port, allow_redirects=False,
                     headers={"Host": "evil.example", "Accept": "text/html"})
    assert r.status_code == 302
    assert authorize_params(r.headers["Location"])["redirect_uri"] == h.url + "/api/auth/callback"


@pytest.mark.parametrize("value", ["/api/auth/callback?x=1", "//evil.example/cb", "/a/%2e%2e/cb"])
def test_redirect_uri_path_must_be_plain(idp, module_path, value):
    h = Httpd(module_path, idp=idp, scalekit_conf=multi_name_conf(idp, "c", "s", redirect=value))
    try:
        rc, out = h.config_test()
    finally:
        h.cleanup()
    assert rc != 0 and "ScalekitRedirectURI" in out, out


# ---------------------------------------------------------------- behind a TLS-terminating proxy

FRONT_CONF = """
ProxyPreserveHost On
RequestHeader set X-Forwarded-Proto https
ProxyPass / http://127.0.0.1:%d/
ProxyPassReverse / http://127.0.0.1:%d/
"""


def behind_proxy(httpd_factory, idp, back_conf):
    """A plain-http Apache with the module behind a front Apache that terminates TLS (HTTP/2 to
    the browser) and proxies with the Host kept. back_conf(front) -> (scalekit_conf, extra_conf)."""
    back = httpd_factory(idp=idp)
    front = httpd_factory(load_scalekit=False, tls=True, proxy=True,
                          extra_conf=FRONT_CONF % (back.port, back.port))
    sk, extra = back_conf(front)
    back.graceful(settle=True, scalekit_conf=sk, extra_conf=extra)
    return front, back


def proxied_sign_in(s, front):
    r = s.get(front.url + "/api/auth/login?return_to=/dashboard/", allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    callback = authorize_params(r.headers["Location"])["redirect_uri"]
    state = [c for c in set_cookies(r) if c.startswith("sk-state-")]
    r2 = s.get(r.headers["Location"])
    return callback, state, r2


def assert_signed_in_securely(front, s, callback, state, r):
    assert callback == front.url + "/api/auth/callback", callback
    assert state and all("secure" in attrs(c) for c in state), state
    assert r.status_code == 200 and r.url == front.url + "/dashboard/", (r.url, r.text[:300])
    cb = r.history[-1]
    assert cb.url.startswith(front.url + "/api/auth/callback?")
    assert cb.headers["Location"] in ("/dashboard/", front.url + "/dashboard/"), cb.headers
    session = [c for c in set_cookies(cb) if not c.startswith("sk-state-")]
    assert session and all("secure" in attrs(c) for c in session), session
    out = s.get(front.url + "/api/auth/logout", allow_redirects=False)
    assert out.status_code == 302
    assert authorize_params(out.headers["Location"])["post_logout_redirect_uri"] == front.url + "/"


def test_behind_tls_proxy_with_secure_on_and_absolute_redirect_uri(idp, httpd_factory, browser_session):
    """The documented setting behind a TLS-terminating proxy: ScalekitCookieSecure on and an
    absolute https ScalekitRedirectURI. Sign-in through the front ends on the front's https origin,
    every cookie is Secure, and sign-out returns to the https origin (not the http one httpd sees)."""
    def conf(front):
        return (multi_name_conf(idp, idp.client_id, idp.client_secret,
                                redirect=front.url + "/api/auth/callback")
                + "ScalekitCookieSecure on\n", "")
    front, back = behind_proxy(httpd_factory, idp, conf)
    s = browser_session(ca=front.ca)
    assert_signed_in_securely(front, s, *proxied_sign_in(s, front))


def test_behind_tls_proxy_with_https_servername_and_path_redirect_uri(idp, httpd_factory,
                                                                      browser_session):
    """Apache's own way to tell a backend its public scheme: ServerName https://host. With a path
    ScalekitRedirectURI the callback is https on the front's host and port, and cookies are Secure
    with ScalekitCookieSecure at auto."""
    def conf(front):
        return (multi_name_conf(idp, idp.client_id, idp.client_secret),
                "ServerName https://localhost:%d\n" % front.port)
    front, back = behind_proxy(httpd_factory, idp, conf)
    s = browser_session(ca=front.ca)
    assert_signed_in_securely(front, s, *proxied_sign_in(s, front))


def test_client_sent_forwarded_headers_are_not_believed(idp, httpd_factory):
    """A client talking plain http to the server cannot make it believe https, nor another host,
    with X-Forwarded-Proto / X-Forwarded-Host: no Secure cookie, an http callback on its own name."""
    h = httpd_factory(idp=idp, scalekit_conf=multi_name_conf(idp, idp.client_id, idp.client_secret))
    r = requests.get(h.url + "/api/auth/login?return_to=/", allow_redirects=False,
                     headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
                              "X-Forwarded-Port": "443", "Forwarded": "proto=https;host=evil.example"})
    assert r.status_code == 302
    assert authorize_params(r.headers["Location"])["redirect_uri"] == h.url + "/api/auth/callback"
    state = [c for c in set_cookies(r) if c.startswith("sk-state-")][0]
    assert "secure" not in attrs(state), state


# ---------------------------------------------------------------- WebSockets behind the module

WS_LOCATION = """
<Location /ws/>
    AuthType Scalekit
    Require valid-user
    ScalekitClaimHeaders X-Scalekit-
    ProxyPass %s
</Location>
"""


@pytest.fixture
def ws_backend():
    from wsecho import WsEcho
    with WsEcho() as ws:
        yield ws


# mod_proxy_wstunnel's ws:// worker, and mod_proxy_http's own upgrade (2.4.47+), over https
WS_SHAPES = {"wstunnel": ("ws://127.0.0.1:%d/ws/", False), "upgrade-https": (
    "http://127.0.0.1:%d/ws/ upgrade=websocket", True)}


@pytest.mark.parametrize("shape", sorted(WS_SHAPES))
def test_websocket_upgrade_carries_the_session(idp, httpd_factory, browser_session, ws_backend,
                                               shape):
    """A WebSocket application behind AuthType Scalekit: the upgrade request is authenticated by
    the session cookie, the backend sees the claim headers (and none of the module's cookies), and
    messages flow both ways. Without a session the upgrade gets 401, never a redirect to sign in
    (a WebSocket cannot follow one), and the backend is never asked."""
    from wsecho import ws_connect
    target, tls = WS_SHAPES[shape]
    h = httpd_factory(idp=idp, proxy=True, tls=tls, extra_modules=["proxy_wstunnel"],
                      extra_conf=WS_LOCATION % (target % ws_backend.port))
    host = "localhost:%d" % h.port
    ca = h.ca if tls else None

    status, headers, conn = ws_connect(h.port, "/ws/chat", host, tls_ca=ca)
    assert status == 401 and conn is None, (status, headers)
    assert ws_backend.requests == []

    idp.set_user(email="grace@example.com")
    s = browser_session(ca=h.ca)
    r = s.get(h.url + "/api/auth/login?return_to=/dashboard/")
    assert r.status_code == 200 and r.url == h.url + "/dashboard/"
    cookie = "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies if c.name.startswith("sk-"))
    status, headers, conn = ws_connect(h.port, "/ws/chat", host, tls_ca=ca,
                                       headers={"Cookie": cookie + "; app=1",
                                                "X-Scalekit-Email": "forged@example.com"})
    assert status == 101, (status, headers)
    try:
        seen = json.loads(conn.recv_text())
        assert seen["path"] == "/ws/chat"
        assert seen["headers"]["x-scalekit-sub"] == "usr_demo001", seen
        assert seen["headers"]["x-scalekit-email"] == "grace@example.com", seen
        assert "sk-access-token" not in seen["headers"].get("cookie", ""), seen
        assert "app=1" in seen["headers"].get("cookie", ""), seen
        for text in ("hello", "x" * 70000):
            conn.send_text(text)
            assert conn.recv_text() == text
    finally:
        conn.close()
        conn.sock.close()
    # httpd logs the upgrade once the tunnel has closed.
    deadline = time.monotonic() + 10
    while not any(row["status"] == 101 for row in h.access_log()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [row["user"] for row in h.access_log() if row["status"] == 101] == ["usr_demo001"]
