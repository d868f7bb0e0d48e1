# SPDX-License-Identifier: Apache-2.0
"""Who may make the module spend a refresh at Scalekit, and how often (cookie sessions).

A refresh is a client-authenticated call to the token endpoint: each one spends the site's rate
limit at Scalekit. With cookie sessions only a request whose access token passed every check but
its exp is refreshed, the answer must be for that token's user, failures are not retried for a
while (per refresh token, per session, and a budget per server), and the answer parallel requests
share is bound to the session that asked and kept only seconds. The IdP's log counts the calls.
"""
import secrets
import time

import requests

from httpd import DEFAULT_LOCATIONS
from test_signin import endpoint_calls, set_cookies, signin

API = {"Accept": "application/json"}
LOCATIONS = DEFAULT_LOCATIONS + ("<Location /sk-status>\n SetHandler scalekit-status\n"
                                 " Require ip 127.0.0.1\n</Location>\n")
SESSION_COOKIES = {"sk-access-token", "sk-id-token", "sk-refresh-token"}
KEEP_BOUND = 15                  # s: how long a shared refresh answer is kept (cookie sessions)
FAIL_BUDGET = 60                 # failed refreshes per minute per server before refreshes wait


def server(idp, httpd_factory):
    return httpd_factory(idp=idp, locations=LOCATIONS, extra_conf="ScalekitLeeway 0\n")


def refreshes(idp):
    return endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")


def counters(h):
    return requests.get(h.url + "/sk-status?json", timeout=30).json()["all_processes"]


def expired(idp, **claims):
    """An access token of this IdP, good in every way but its exp."""
    now = int(time.time())
    return idp.mint(dict({"exp": now - 5, "iat": now - 305, "nbf": now - 305}, **claims),
                    base="access")


def cleared(r):
    return {c.split("=", 1)[0] for c in set_cookies(r) if "Max-Age=0" in c}


def get(h, cookies, path="/cgi-bin/whoami"):
    return requests.get(h.url + path, cookies={k: v for k, v in cookies.items() if v is not None},
                        headers=API, allow_redirects=False, timeout=60)


def set_access(s, token):
    found = [c for c in s.cookies if c.name == "sk-access-token"]
    assert len(found) == 1, found
    found[0].value = token


def made_up():
    return secrets.token_urlsafe(32)


def test_made_up_refresh_cookies_call_nobody(idp, httpd_factory):
    """60 requests that carry only a refresh cookie of their own making: not one refresh (the old
    code made 60), each a 401 with the cookies cleared, counted as refused."""
    h = server(idp, httpd_factory)
    before = counters(h)
    for _ in range(60):
        r = get(h, {"sk-refresh-token": made_up()})
        assert r.status_code == 401 and "sk-refresh-token" in cleared(r), (r.status_code, cleared(r))
    assert refreshes(idp) == []
    after = counters(h)
    assert after["refresh_refused"] - before["refresh_refused"] == 60
    assert after["refreshes"] == before["refreshes"]
    assert "no access token came with it" in h.error_log()


def test_only_a_valid_expired_access_token_opens_a_refresh(idp, httpd_factory, browser_session):
    """A real refresh cookie with a missing, junk, forged or foreign access token: no refresh,
    the session is cleared. The same refresh cookie with the session's own kind of token, valid
    but expired, refreshes once; the new access and refresh cookies live equally long."""
    h = server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    refresh = s.cookies.get("sk-refresh-token")
    now = int(time.time())
    past = {"exp": now - 5, "iat": now - 305, "nbf": now - 305}
    bad = {
        "none (lost, or an older version's cookie)": None,
        "junk": "junk",
        "bad signature": idp.mint(past, base="access", sign="bad"),
        "unknown key": idp.mint(past, base="access", sign="unknown"),
        "alg none": idp.mint(past, base="access", sign="none"),
        "wrong issuer": expired(idp, iss="https://evil.example"),
        "wrong audience": expired(idp, aud=["skc_other"]),
        "an ID token": idp.mint(past, base="id"),
        "no sub": expired(idp, sub=None),
    }
    for why, access in bad.items():
        r = get(h, {"sk-access-token": access, "sk-refresh-token": refresh})
        assert r.status_code == 401 and SESSION_COOKIES <= cleared(r), (why, r.status_code, cleared(r))
        assert refreshes(idp) == [], why
    # The same refresh cookie with a valid expired token of the session: one refresh.
    set_access(s, expired(idp))
    r = s.get(h.url + "/cgi-bin/whoami", headers=API, allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    assert len(refreshes(idp)) == 1 and s.cookies.get("sk-refresh-token") != refresh
    # A browser keeps both for as long: neither outlives the other (both end with the browser).
    life = {c.split("=", 1)[0]: sorted(a.strip().split("=")[0] for a in c.split(";")[1:])
            for c in set_cookies(r)}
    assert life["sk-access-token"] == life["sk-refresh-token"]
    assert not {"Max-Age", "Expires"} & set(life["sk-access-token"])


def test_refresh_answer_for_another_user_is_refused(idp, httpd_factory, browser_session):
    h = server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    idp.set_user(sub="usr_other")                    # the IdP now answers for someone else
    set_access(s, expired(idp, sub="usr_demo001"))
    r = s.get(h.url + "/cgi-bin/whoami", headers=API, allow_redirects=False)
    assert r.status_code == 401 and SESSION_COOKIES <= cleared(r), (r.status_code, cleared(r))
    assert len(refreshes(idp)) == 1
    assert "tokens of another user (usr_other, the session's is usr_demo001): refused" in h.error_log()


def test_shared_refresh_answer_is_bound_to_the_session(idp, httpd_factory, browser_session):
    """Requests in flight with the old cookies share the refresh's answer; the old refresh token
    with another access token (the same user's, valid and expired) does not get it: it goes to
    the IdP, which refuses a rotated token."""
    h = server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    set_access(s, expired(idp))
    old = requests.utils.dict_from_cookiejar(s.cookies)
    r = get(h, old)
    assert r.status_code == 200 and len(refreshes(idp)) == 1
    late_tab = get(h, old)                            # the same cookies: the same answer
    assert late_tab.status_code == 200 and len(refreshes(idp)) == 1
    assert late_tab.cookies.get("sk-refresh-token") == r.cookies.get("sk-refresh-token")
    other = get(h, dict(old, **{"sk-access-token": expired(idp)}))
    assert other.status_code == 401 and "sk-refresh-token" in cleared(other)
    calls = refreshes(idp)
    assert [e["status"] for e in calls] == [200, 400], [e["status"] for e in calls]


def test_rotated_refresh_token_replayed_after_the_window(idp, httpd_factory, browser_session):
    """A copy of the cookies taken before a refresh and replayed once the parallel requests are
    long done reaches the IdP (which refuses the rotated token and ends the session) instead of
    receiving the new tokens from the shared cache."""
    h = server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    set_access(s, expired(idp))
    stolen = requests.utils.dict_from_cookiejar(s.cookies)
    assert s.get(h.url + "/cgi-bin/whoami", headers=API).status_code == 200
    assert len(refreshes(idp)) == 1
    time.sleep(KEEP_BOUND + 1.5)
    r = get(h, stolen)
    assert r.status_code == 401 and SESSION_COOKIES <= cleared(r), (r.status_code, cleared(r))
    calls = refreshes(idp)
    assert [e["status"] for e in calls] == [200, 400], [e["status"] for e in calls]
    assert "refresh token already used" in h.error_log()


def test_failed_refresh_is_not_retried(idp, httpd_factory):
    """A refresh that failed is not tried again for a while, neither with another refresh cookie
    for the same session (access token) nor with the same refresh token for another session."""
    h = server(idp, httpd_factory)
    before = counters(h)
    access, refresh = expired(idp), made_up()
    r = get(h, {"sk-access-token": access, "sk-refresh-token": refresh})
    assert r.status_code == 401 and len(refreshes(idp)) == 1     # unknown to the IdP: refused
    for cookies in ({"sk-access-token": access, "sk-refresh-token": made_up()},
                    {"sk-access-token": expired(idp), "sk-refresh-token": refresh}):
        r = get(h, cookies)
        assert r.status_code == 401 and SESSION_COOKIES <= cleared(r), (r.status_code, cleared(r))
    assert len(refreshes(idp)) == 1
    after = counters(h)
    assert after["refresh_limited"] - before["refresh_limited"] == 2
    assert after["refresh_failures"] - before["refresh_failures"] == 1
    assert "failed lately" in h.error_log()


def test_failed_refreshes_have_a_server_wide_budget(idp, httpd_factory, browser_session):
    """Past FAIL_BUDGET failed refreshes in a minute (each of another session: the per-session
    mark does not stop them), refreshes wait (a 502, the session kept) instead of calling the
    IdP; a real session's too, until the minute is over."""
    h = server(idp, httpd_factory)
    s = browser_session()
    signin(h, s)
    before = counters(h)
    for _ in range(FAIL_BUDGET):
        r = get(h, {"sk-access-token": expired(idp), "sk-refresh-token": made_up()})
        assert r.status_code == 401, r.status_code
    assert len(refreshes(idp)) == FAIL_BUDGET
    r = get(h, {"sk-access-token": expired(idp), "sk-refresh-token": made_up()})
    assert r.status_code == 502 and not cleared(r), (r.status_code, cleared(r))
    set_access(s, expired(idp))
    r = s.get(h.url + "/cgi-bin/whoami", headers=API, allow_redirects=False)
    assert r.status_code == 502 and not cleared(r), (r.status_code, cleared(r))
    assert len(refreshes(idp)) == FAIL_BUDGET
    after = counters(h)
    assert after["refresh_limited"] - before["refresh_limited"] == 2
    assert "too many refreshes failed on this server lately" in h.error_log()
    text = requests.get(h.url + "/sk-status", timeout=30).text
    assert "refresh_limited" in text and "refresh_refused" in text
