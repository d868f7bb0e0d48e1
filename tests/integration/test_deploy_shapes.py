"""Production shapes: HTTPS with HTTP/2, a TLS-terminating proxy in front, one virtual host with
several names, WebSocket applications. (Chromium over https: tests/integration/test_browser.py.)"""
import subprocess

import pytest

from httpd import Httpd  # noqa: F401


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
