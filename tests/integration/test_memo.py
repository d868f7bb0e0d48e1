# SPDX-License-Identifier: Apache-2.0
"""A kept-alive connection that sends the same Cookie header again is served from the session its
previous request proved (the connection's memo) - and only then: a header that differs by one
byte, another user's, none at all, a session signed out or expired since, are each decided
afresh on the same connection. A reverse proxy in front of Apache sends many users' requests over
one connection: no request may ever get the session of another request's cookies."""
import http.client
import json
import re
import time

import requests

from test_scaleout import logout_token, session_sid
from test_security import ENVDUMP_CGI, loc, raw_exchange
from test_signin import signin

HANDLER = loc("/api/auth", " SetHandler scalekit\n")
STATUS = loc("/sk-status", " SetHandler scalekit-status\n Require ip 127.0.0.1\n")
PROTECTED = " AuthType Scalekit\n Require valid-user\n"


def memo_server(idp, httpd_factory, extra_conf=""):
    locations = (HANDLER + STATUS + loc("/cgi-bin", PROTECTED) +
                 loc("/pass", PROTECTED + " ScalekitPassAccessToken On\n CGIPassAuth On\n"))
    h = httpd_factory(idp=idp, locations=locations,
                      extra_conf="ScriptAlias /pass @ROOT@/cgi-bin/envdump\n" + extra_conf)
    cgi = h.root / "cgi-bin" / "envdump"
    cgi.write_text(ENVDUMP_CGI)
    cgi.chmod(0o755)
    return h


def cookie_header(s):
    return "; ".join("%s=%s" % (c.name, c.value) for c in s.cookies if c.name.startswith("sk-"))


class Connection:
    """One kept-alive HTTP/1.1 connection: every request goes over the same socket."""

    def __init__(self, h):
        self.conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
        self.sock = None

    def get(self, path, cookie=None, extra=()):
        headers = {"Host": "localhost", "Accept": "application/json", **dict(extra)}
        if cookie is not None:
            headers["Cookie"] = cookie
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        # The same socket as before: the memo is the connection's.
        assert self.sock is None or self.conn.sock is self.sock, "the connection was not kept"
        self.sock = self.conn.sock
        return r.status, body

    def env(self, path, cookie):
        status, body = self.get(path, cookie)
        assert status == 200, (status, body[:300])
        return {k: bytes.fromhex(v).decode("latin-1") for k, v in json.loads(body).items()}

    def close(self):
        self.conn.close()


def two_users(h, idp, browser_session):
    """Two signed-in browsers: usr_demo001 (ada@example.com), then usr_other."""
    ada = browser_session()
    signin(h, ada)
    idp.set_user(sub="usr_other", email="other@example.com")
    other = browser_session()
    signin(h, other)
    return ada, other


def memo_hits(h):
    return requests.get(h.url + "/sk-status?json").json()["all_processes"]["session_memo_hits"]


def test_same_cookies_on_one_connection_use_the_memo(idp, httpd_factory, browser_session):
    h = memo_server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    cookie = cookie_header(s) + "; app_pref=dark"
    before = memo_hits(h)
    c = Connection(h)
    try:
        for _ in range(5):
            env = c.env("/cgi-bin/envdump", cookie)
            assert env["REMOTE_USER"] == "usr_demo001" and env["SCALEKIT_EMAIL"] == "ada@example.com"
            # The module's cookies are stripped on a memo's request as on any other.
            assert env.get("HTTP_COOKIE") == "app_pref=dark", env.get("HTTP_COOKIE")
        access = s.cookies.get("sk-access-token")
        for _ in range(2):
            env = c.env("/pass", cookie)
            assert env["HTTP_AUTHORIZATION"] == "Bearer " + access
    finally:
        c.close()
    assert memo_hits(h) - before >= 5      # 7 requests, a first per process at most uncached


def test_other_cookies_on_the_same_connection_are_decided_afresh(idp, httpd_factory, browser_session):
    """As a reverse proxy would send them: users interleaved on one connection."""
    h = memo_server(idp, httpd_factory)
    ada, other = two_users(h, idp, browser_session)
    a, o = cookie_header(ada), cookie_header(other)
    token = ada.cookies.get("sk-access-token")
    forged = a.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    no_sig = a.replace(token, token.rsplit(".", 1)[0] + ".")
    c = Connection(h)
    try:
        for _ in range(2):
            assert c.env("/cgi-bin/envdump", a)["REMOTE_USER"] == "usr_demo001"
            assert c.env("/cgi-bin/envdump", a)["REMOTE_USER"] == "usr_demo001"
            assert c.get("/cgi-bin/envdump", forged)[0] == 401
            assert c.get("/cgi-bin/envdump", no_sig)[0] == 401
            env = c.env("/cgi-bin/envdump", a + "; app_pref=dark")       # another header: its own strip
            assert env["REMOTE_USER"] == "usr_demo001" and env.get("HTTP_COOKIE") == "app_pref=dark", env
            assert c.env("/cgi-bin/envdump", a).get("HTTP_COOKIE") is None  # and back
            assert c.get("/cgi-bin/envdump")[0] == 401                   # no cookies at all
            assert c.env("/cgi-bin/envdump", o)["REMOTE_USER"] == "usr_other"
            assert c.env("/cgi-bin/envdump", o)["SCALEKIT_EMAIL"] == "other@example.com"
            assert c.env("/cgi-bin/envdump", a)["SCALEKIT_EMAIL"] == "ada@example.com"
    finally:
        c.close()


def test_a_session_signed_out_meanwhile_is_refused_on_the_same_connection(idp, httpd_factory,
                                                                         browser_session):
    h = memo_server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    cookie = cookie_header(s)
    sid = session_sid(h, s)
    c = Connection(h)
    try:
        for _ in range(3):
            assert c.env("/cgi-bin/envdump", cookie)["REMOTE_USER"] == "usr_demo001"
        r = requests.post(h.url + "/api/auth/backchannel-logout",
                          data={"logout_token": logout_token(idp, sid=sid)})
        assert r.status_code == 200, r.text
        assert c.get("/cgi-bin/envdump", cookie)[0] == 401
    finally:
        c.close()


def test_a_token_expired_meanwhile_is_refused_on_the_same_connection(idp, httpd_factory):
    h = memo_server(idp, httpd_factory, extra_conf="ScalekitLeeway 0\n")
    now = int(time.time())
    access = idp.mint({"exp": now + 3, "iat": now, "nbf": now}, base="access")
    cookie = "sk-access-token=" + access
    c = Connection(h)
    try:
        assert c.env("/cgi-bin/envdump", cookie)["REMOTE_USER"] == "usr_demo001"
        assert c.env("/cgi-bin/envdump", cookie)["REMOTE_USER"] == "usr_demo001"
        time.sleep(max(0.0, now + 4.2 - time.time()))
        status, _ = c.get("/cgi-bin/envdump", cookie)
        assert status == 401, status
    finally:
        c.close()


def test_virtual_hosts_on_one_connection_publish_their_own_user(idp, httpd_factory, browser_session):
    """Name-based virtual hosts share a connection's memo: each still names the user its own way
    (ScalekitRemoteUserClaim)."""
    vhosts = ("<VirtualHost 127.0.0.1:@PORT@>\n ServerName localhost\n</VirtualHost>\n"
              "<VirtualHost 127.0.0.1:@PORT@>\n ServerName other.test\n"
              " ScalekitRemoteUserClaim email\n</VirtualHost>\n")
    h = memo_server(idp, httpd_factory, extra_conf=vhosts)
    s = browser_session()
    signin(h, s)
    cookie = cookie_header(s)
    c = Connection(h)
    try:
        for _ in range(3):
            for host, user in (("localhost", "usr_demo001"), ("localhost", "usr_demo001"),
                               ("other.test", "ada@example.com"), ("other.test", "ada@example.com")):
                status, body = c.get("/cgi-bin/envdump", cookie, extra={"Host": host})
                assert status == 200, (host, status, body[:300])
                env = {k: bytes.fromhex(v).decode() for k, v in json.loads(body).items()}
                assert env["REMOTE_USER"] == user, (host, env["REMOTE_USER"])
    finally:
        c.close()


def test_pipelined_requests_of_two_users_are_each_their_own(idp, httpd_factory, browser_session):
    """Requests sent back to back before any answer is read (HTTP/1.1 pipelining), users
    interleaved, answers larger than a socket write: each request is answered and logged with its
    own user, in order, and the server stays up. (The httpd of Debian 12 frees a request's pool
    before it reads the next one even then; the memo does not count on it: an entry replaced while
    a request holds it is freed by that request's pool.)"""
    h = memo_server(idp, httpd_factory,
                    extra_conf="Alias /memo-static @ROOT@/htdocs\n<Location /memo-static>\n"
                               + PROTECTED + "</Location>\n")
    ada, other = two_users(h, idp, browser_session)
    a, o = cookie_header(ada), cookie_header(other)
    (h.root / "htdocs" / "big.html").write_text("x" * 40000)
    order = [a, a, a, o, o, a, None, o, a, a, o, a + "; app_pref=1", a]
    rows_before = len(h.access_log())
    raw = b"".join(("GET /memo-static/big.html?n=%d HTTP/1.1\r\nHost: localhost\r\n"
                  "Accept: application/json\r\n%s%s\r\n" % (
        i, "Cookie: %s\r\n" % c if c else "", "Connection: close\r\n" if i == len(order) - 1 else "")
    ).encode() for i, c in enumerate(order))
    data = raw_exchange(h, raw)
    statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [401 if c is None else 200 for c in order], statuses
    rows = h.access_log(at_least=rows_before + len(order))[rows_before:]
    users = {r["uri"]: r["user"] for r in rows}
    for i, c in enumerate(order):
        want = "-" if c is None else ("usr_other" if c == o else "usr_demo001")
        assert users["/memo-static/big.html?n=%d" % i] == want, (i, users)
    assert serves_ada_afresh(h, a)


def serves_ada_afresh(h, cookie):
    """Whether a fresh connection with Ada's cookies is served as Ada."""
    c = Connection(h)
    try:
        return c.env("/cgi-bin/envdump", cookie)["REMOTE_USER"] == "usr_demo001"
    finally:
        c.close()
