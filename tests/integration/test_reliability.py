# SPDX-License-Identifier: Apache-2.0
"""Reliability: the identity provider failing in every way it can, every MPM, graceful restarts
under load, refresh races across processes, and a start-up that never waits for the network.

Bounds, not speeds: a failing call to the IdP may take ScalekitTimeout (2 s here) plus MARGIN; a
request that needs no IdP must not wait for one. Every request the tests make has its own client
timeout, so a hang fails the test instead of stalling the suite.
"""
import base64
import collections
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from httpd import MPMS, default_mpm, is_asan_build

TIMEOUT = 2                      # ScalekitTimeout in the fault tests
MARGIN = 3                       # what a busy machine may add to a failing IdP call
CLIENT_TIMEOUT = 60              # no request of these tests may take longer than this
IDP_PATHS = ["/oauth/token", "/keys"]
FAULTS = ["down", "slow", "500", "garbage", "close", "hang"]
JSON = {"Accept": "application/json"}
SESSION_COOKIES = ("sk-access-token", "sk-id-token", "sk-refresh-token")


# The tests that need one process with one key store run under a threaded MPM: $SK_TEST_MPM when
# it is one, else event.
THREADED = default_mpm() if default_mpm() != "prefork" else "event"


def one_child(threads=32):
    """One process: one key store, so "the keys are already fetched" holds for every request."""
    return ("StartServers 1\nServerLimit 1\nThreadLimit %d\nThreadsPerChild %d\nMaxRequestWorkers %d\n"
            "MinSpareThreads 1\nMaxSpareThreads %d\n" % (threads, threads, threads, threads))


FAULT_CONF = "ScalekitTimeout %d\nScalekitJWKSRefreshInterval 1\n" % TIMEOUT + one_child()


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def browser():
    s = requests.Session()
    s.trust_env = False
    return s


def get(s, url, **kw):
    kw.setdefault("timeout", CLIENT_TIMEOUT)
    return s.get(url, **kw)


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t0


def signin(h, s, return_to="/cgi-bin/whoami"):
    """A full browser sign-in (the IdP signs in automatically); returns the landing response."""
    r = get(s, h.url + "/api/auth/login", params={"return_to": return_to})
    assert r.status_code == 200 and r.url == h.url + return_to, (r.status_code, r.url, r.text[:300])
    return r


def pending_callback(h):
    """A sign-in that reached the IdP and is about to come back: (browser, callback URL)."""
    s = browser()
    login = get(s, h.url + "/api/auth/login?return_to=/cgi-bin/whoami", allow_redirects=False)
    assert login.status_code == 302, login.status_code
    authorize = get(s, login.headers["Location"], allow_redirects=False)
    assert authorize.status_code == 302, (authorize.status_code, authorize.text[:300])
    cb = authorize.headers["Location"]
    assert cb.startswith(h.url + "/api/auth/callback?"), cb
    return s, cb


def expired_access(idp, sub=None):
    now = int(time.time())
    claims = {"exp": now - 600, "iat": now - 900, "nbf": now - 900}
    if sub:
        claims["sub"] = sub
    return idp.mint(claims, base="access")


def set_access(s, token):
    found = [c for c in s.cookies if c.name == "sk-access-token"]
    assert len(found) == 1, found
    found[0].value = token


def expire(idp, s, token=None):
    """Swap the session's access token for an expired one: its next request must refresh."""
    token = token or expired_access(idp)
    set_access(s, token)
    return token


def set_cookies(r):
    return [v for k, v in r.raw.headers.items() if k.lower() == "set-cookie"]


def cleared(r):
    return {c.split("=", 1)[0] for c in set_cookies(r) if "Max-Age=0" in c}


def sent_to(s, path="/cgi-bin/whoami"):
    """The cookies of s a browser sends with a request for path (the ID token's cookie goes to
    the sign-in handler's path only)."""
    return {c.name: c.value for c in s.cookies
            if path == c.path or path.startswith(c.path.rstrip("/") + "/")}


def new_cookies(r):
    out = {}
    for c in set_cookies(r):
        name, _, rest = c.partition("=")
        if "Max-Age=0" not in c:
            out[name] = rest.split(";", 1)[0]
    return out


def grants(idp, grant_type):
    return [e for e in idp.log() if e["path"] == "/oauth/token"
            and e["form"].get("grant_type") == grant_type]


def keys_fetches(idp):
    return len([e for e in idp.log() if e["path"] == "/keys"])


def jwt_header(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def assert_clear_failure_page(r, elapsed, bound):
    """The IdP let us down: a 502/503 of the module's own (not a 500, not a hang), quickly."""
    assert r.status_code in (502, 503), (r.status_code, r.text[:500])
    assert elapsed < bound, "took %.1fs, bound %.1fs" % (elapsed, bound)
    assert r.headers.get("Content-Type", "").startswith("text/html"), r.headers
    assert re.search(r"<h1>Sign-in (service unavailable|did not complete|could not be verified)</h1>",
                     r.text), r.text[:500]
    assert "/api/auth/login?return_to=" in r.text            # a way forward: sign in again
    assert r.headers.get("Cache-Control") == "no-store"
    assert "eyJ" not in r.text                                # no token on the page


def inject(idp, mode):
    if mode == "down":
        idp.stop()
    elif mode == "slow":
        # Answers after the module gave up, and after this test: a refresh the IdP carried out
        # late would spend the refresh token behind the module's back (Scalekit's rotation).
        idp.fault("slow", delay=TIMEOUT + 25, paths=IDP_PATHS)
    elif mode == "hang":
        idp.fault("hang", delay=TIMEOUT + 20, paths=IDP_PATHS)
    else:
        idp.fault(mode, paths=IDP_PATHS)


def recover(idp, mode):
    if mode == "down":
        idp.start()           # same ports and keys; its sessions and refresh tokens are gone
    else:
        idp.fault("none")


def until_ok(fn, deadline_s=20, every=0.5):
    """Call fn until it returns a 200 (answers of a failed refresh are shared for 2 s)."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = fn()
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(every)


def ready(h, timeout=30):
    """Until the parent has logged that it runs: httpd.start() returns once the port answers,
    which is before apache2 installs its signal handlers (a SIGHUP then would kill it)."""
    deadline = time.monotonic() + timeout
    while "resuming normal operations" not in h.error_log():
        assert time.monotonic() < deadline, "httpd never said it runs"
        time.sleep(0.05)
    return h


def fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def proc_status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def rss_kb(pid):
    v = proc_status(pid).get("VmRSS", "0 kB").split()[0]
    return int(v)


# ---------------------------------------------------------------------------------------------
# the identity provider fails
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", FAULTS)
def test_idp_fault_keeps_sessions_fails_fast_and_recovers(idp, httpd_factory, mode):
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf=FAULT_CONF)
    user = browser()
    signin(h, user)                                   # the one child has fetched the keys
    renewing = browser()
    signin(h, renewing)
    refresh_before = renewing.cookies.get("sk-refresh-token")
    newcomer, callback = pending_callback(h)
    api_token = idp.mint({"sub": "usr_api"}, base="access")   # never seen: validated cold
    unknown_kid = idp.mint({}, base="access", header={"kid": "snk_unknown"})
    expired = expired_access(idp)
    time.sleep(1.1)                                   # ScalekitJWKSRefreshInterval: a refetch may start
    bound = TIMEOUT + MARGIN

    inject(idp, mode)
    try:
        # A token with a kid nobody knows makes the module try the JWKS: that fails (boundedly)
        # and the keys it has stay in use.
        r, t = timed(get, requests, h.url + "/dashboard/", headers=JSON,
                     cookies={"sk-access-token": unknown_kid})
        assert r.status_code == 401 and t < bound, (r.status_code, t)

        # Sessions with a valid access token keep being served: the keys are cached.
        for _ in range(3):
            r = get(user, h.url + "/cgi-bin/whoami", allow_redirects=False)
            assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001", r.status_code
        r = get(requests, h.url + "/cgi-bin/whoami", cookies={"sk-access-token": api_token})
        assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_api"

        # A sign-in cannot finish: a clear 502 within the timeout.
        r, t = timed(get, newcomer, callback, allow_redirects=False)
        assert_clear_failure_page(r, t, bound)
        assert not new_cookies(r).keys() & set(SESSION_COOKIES)

        # Neither can a refresh; the session is kept for when the IdP is back.
        expire(idp, renewing, expired)
        r, t = timed(get, renewing, h.url + "/dashboard/", allow_redirects=False)
        assert_clear_failure_page(r, t, bound)
        assert cleared(r) == set() and not new_cookies(r)
        assert renewing.cookies.get("sk-refresh-token") == refresh_before
        # An API client with a valid token does not care.
        r = get(requests, h.url + "/dashboard/", cookies={"sk-access-token": api_token})
        assert r.status_code == 200
    finally:
        recover(idp, mode)

    log = h.error_log()
    assert "refresh of session" in log and "callback:" in log, log[-2000:]

    # Back by itself, no restart of httpd: sign-in and refresh work again.
    again = browser()
    r = signin(h, again)
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    if mode == "down":
        # The restarted local IdP forgot the refresh tokens it had issued (the real one would
        # not): check the refresh with a session of the new IdP.
        renewing, refresh_before = again, again.cookies.get("sk-refresh-token")
    expire(idp, renewing)
    r = until_ok(lambda: get(renewing, h.url + "/cgi-bin/whoami", allow_redirects=False))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    assert renewing.cookies.get("sk-refresh-token") != refresh_before
    assert renewing.cookies.get("sk-access-token") != expired
    assert h.pids(), "httpd still runs"
    assert 500 not in {row["status"] for row in h.access_log()}


@pytest.mark.parametrize("keep_old", [False, True], ids=["old-key-withdrawn", "new-key-added"])
def test_jwks_change_needs_no_restart(idp, httpd_factory, keep_old):
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf="ScalekitJWKSRefreshInterval 1\n" + one_child())
    old = browser()
    signin(h, old)
    old_kid = jwt_header(old.cookies.get("sk-access-token"))["kid"]
    fetches = keys_fetches(idp)
    new_kid = idp.rotate(keep_old=keep_old)
    assert new_kid != old_kid
    time.sleep(1.2)                                  # the refetch interval since the first fetch

    new = browser()
    r = signin(h, new)                               # tokens with a kid the module has not seen
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    assert jwt_header(new.cookies.get("sk-access-token"))["kid"] == new_kid
    assert keys_fetches(idp) == fetches + 1

    # The session signed in before the rotation is not logged out.
    r = get(old, h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    # Its next refresh brings tokens of the new key.
    expire(idp, old)
    r = get(old, h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200, r.status_code
    assert jwt_header(old.cookies.get("sk-access-token"))["kid"] == new_kid

    if keep_old:
        # A token of the old key that the module never saw: still good, the key is still published.
        stale = idp.mint({"sub": "usr_late"}, base="access", kid=old_kid)
        r = get(requests, h.url + "/dashboard/", cookies={"sk-access-token": stale}, headers=JSON)
        assert r.status_code == 200
    assert keys_fetches(idp) == fetches + 1


def test_refresh_kept_while_the_new_keys_cannot_be_had(idp, httpd_factory):
    """A refresh succeeds, but its tokens are signed by a key the module cannot fetch yet (the
    IdP rotated, its /keys fails). The session is not thrown away with the rotated refresh token:
    a 502 now, and once the keys can be had the retry reuses the refresh's answer."""
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf="ScalekitJWKSRefreshInterval 1\n" + one_child())
    s = browser()
    signin(h, s)
    refresh = s.cookies.get("sk-refresh-token")
    old_kid = jwt_header(s.cookies.get("sk-access-token"))["kid"]
    now = int(time.time())
    # The session's token, expired: signed by the key the module holds (a refresh needs a token
    # it can verify).
    expired = idp.mint({"exp": now - 600, "iat": now - 900, "nbf": now - 900}, base="access",
                       kid=old_kid)
    new_kid = idp.rotate(keep_old=False)
    idp.fault("500", paths=["/keys"])
    try:
        time.sleep(1.2)                              # past the refetch interval
        expire(idp, s, expired)
        r = get(s, h.url + "/cgi-bin/whoami", allow_redirects=False, headers=JSON)
        assert r.status_code == 502 and not cleared(r), (r.status_code, cleared(r))
        assert s.cookies.get("sk-refresh-token") == refresh
    finally:
        idp.fault("none")
    time.sleep(1.2)
    r = get(s, h.url + "/cgi-bin/whoami", allow_redirects=False, headers=JSON)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    assert jwt_header(s.cookies.get("sk-access-token"))["kid"] == new_kid
    assert len(grants(idp, "refresh_token")) == 1    # the answer was reused, not a second refresh
    assert "unknown-kid" in h.error_log() or "no-keys" in h.error_log()


def test_hung_idp_blocks_no_worker(idp, httpd_factory):
    """While every call to the IdP hangs, requests that need it wait at most the timeout, and
    requests that need only validation do not wait at all."""
    timeout, n = 4, 6
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf="ScalekitTimeout %d\nScalekitJWKSRefreshInterval 1\n"
                      % timeout + one_child(threads=64))
    refreshing = []
    for _ in range(n):
        s = browser()
        signin(h, s)                                 # keys fetched; n distinct refresh tokens
        expire(idp, s)
        refreshing.append(s)
    callbacks = [pending_callback(h) for _ in range(n)]
    valid = [idp.mint({"sub": "usr_valid%d" % i}, base="access") for i in range(2 * n)]
    unknown = [idp.mint({"sub": "usr_x%d" % i}, base="access", header={"kid": "snk_nobody%d" % i})
               for i in range(n)]
    time.sleep(1.1)
    idp.fault("hang", delay=timeout + 30, paths=IDP_PATHS)

    barrier = threading.Barrier(5 * n)

    def run(kind, fn):
        barrier.wait(CLIENT_TIMEOUT)
        start = time.monotonic()
        try:
            r = fn()
            status = r.status_code
        except requests.RequestException as e:
            status = repr(e)
        return kind, status, time.monotonic() - start

    jobs = []
    for s in refreshing:
        jobs.append(("refresh", lambda s=s: get(s, h.url + "/dashboard/", allow_redirects=False)))
    for s, cb in callbacks:
        jobs.append(("callback", lambda s=s, cb=cb: get(s, cb, allow_redirects=False)))
    for tok in unknown:
        jobs.append(("unknown-kid", lambda tok=tok: get(requests, h.url + "/dashboard/", headers=JSON,
                                                       cookies={"sk-access-token": tok})))
    for tok in valid:
        jobs.append(("valid", lambda tok=tok: get(requests, h.url + "/dashboard/",
                                                 cookies={"sk-access-token": tok})))
    try:
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda j: run(*j), jobs))
    finally:
        idp.fault("none")

    by_kind = collections.defaultdict(list)
    for kind, status, took in results:
        by_kind[kind].append((status, round(took, 2)))
    expected = {"refresh": {502, 503}, "callback": {502, 503}, "unknown-kid": {401}, "valid": {200}}
    for kind, want in expected.items():
        assert {s for s, _ in by_kind[kind]} <= want, (kind, by_kind[kind])
    # Validation only: never waited for the hung IdP.
    assert max(t for _, t in by_kind["valid"]) < timeout, by_kind["valid"]
    # Everything else: at most the timeout (a refresh waiter: timeout + 2) and a margin.
    assert max(t for _, _, t in results) < timeout + 2 + MARGIN, dict(by_kind)
    # And the server is fine afterwards.
    assert get(requests, h.url + "/dashboard/", cookies={"sk-access-token": valid[0]}).status_code == 200


def test_new_children_serve_valid_sessions_while_idp_is_down(idp, httpd_factory):
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf=FAULT_CONF)
    s = browser()
    signin(h, s)
    api_token = idp.mint({"sub": "usr_api"}, base="access")
    assert get(requests, h.url + "/dashboard/", cookies={"sk-access-token": api_token}).status_code == 200
    idp.stop()
    ready(h).graceful()                           # e.g. logrotate's nightly "apache2ctl graceful"
    r, t = timed(get, s, h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert t < TIMEOUT + MARGIN
    r2 = get(requests, h.url + "/dashboard/", cookies={"sk-access-token": api_token}, headers=JSON)
    assert (r.status_code, r2.status_code) == (200, 200), (r.status_code, r2.status_code)


def test_tokens_from_a_slow_idp_are_accepted_with_zero_leeway(idp, httpd_factory):
    """Tokens minted while the request waited for the token endpoint are checked against the clock
    then, not the request's arrival: with no leeway their iat/nbf would otherwise lie in the future."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n")
    renewing = browser()
    signin(h, renewing)
    expire(idp, renewing)
    idp.fault("slow", delay=1.2, paths=["/oauth/token"])     # slow, well within ScalekitTimeout
    try:
        s = browser()
        r = get(s, h.url + "/api/auth/login?return_to=/cgi-bin/whoami")
        signed_in = (r.status_code, r.url)
        r = get(renewing, h.url + "/cgi-bin/whoami", allow_redirects=False)
        refreshed = (r.status_code, sorted(cleared(r)))
    finally:
        idp.fault("none")
    log = [line for line in h.error_log().splitlines() if "refused" in line or "failed" in line]
    assert (signed_in, refreshed) == ((200, h.url + "/cgi-bin/whoami"), (200, [])), log[-4:]


def vm_data_kb(pid):
    return int(proc_status(pid).get("VmData", "0 kB").split()[0])


def test_waiting_for_a_parallel_refresh_costs_no_memory(idp, httpd_factory):
    h = ready(httpd_factory(idp=idp, mpm=THREADED, extra_conf="ScalekitTimeout 5\n" + one_child(threads=48)))
    s = browser()
    signin(h, s)
    expire(idp, s)
    jar = sent_to(s)
    child = [p for p, _ in h.children() if int(proc_status(p).get("Threads", "1")) > 1][0]
    before = peak = vm_data_kb(child)
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, vm_data_kb(child))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    idp.fault("slow", delay=4.5, paths=["/oauth/token"])      # 29 requests wait 4.5 s for the 30th
    try:
        results = burst(h.url + "/dashboard/", jar, 30)
    finally:
        idp.fault("none")
        stop.set()
        watcher.join()
    assert [st for st, _, _, _ in results] == [200] * 30
    grown_mib = (peak - before) / 1024.0
    assert grown_mib < 64, "the child's heap grew %.0f MiB for 30 waiting requests" % grown_mib


@pytest.mark.skipif(not os.environ.get("SK_TEST_SLOW"), reason="waits 61 s for the JWKS to go stale "
                    "(SK_TEST_SLOW=1 runs it)")
def test_stale_jwks_refetch_holds_no_request(idp, httpd_factory):
    timeout = 4
    h = httpd_factory(idp=idp, mpm=THREADED, extra_conf="ScalekitTimeout %d\nScalekitJWKSCacheTTL 60\n"
                      "ScalekitJWKSRefreshInterval 1\n" % timeout + one_child())
    signin(h, browser())                                  # the keys are fetched now
    tokens = [idp.mint({"sub": "usr_stale%d" % i}, base="access") for i in range(3)]
    time.sleep(61)                                        # ScalekitJWKSCacheTTL: the keys are stale
    idp.fault("hang", delay=60, paths=["/keys"])
    took = []
    try:
        for tok in tokens:                                # never validated: they need the keys
            r, t = timed(get, requests, h.url + "/dashboard/", cookies={"sk-access-token": tok})
            assert r.status_code == 200
            took.append(round(t, 2))
            time.sleep(1.2)
    finally:
        idp.fault("none")
    assert max(took) < timeout - 1, took


# ---------------------------------------------------------------------------------------------
# every MPM
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mpm", MPMS)
def test_signin_cgi_refresh_logout_under_every_mpm(idp, httpd_factory, mpm):
    h = httpd_factory(idp=idp, mpm=mpm)
    s = browser()
    r = get(s, h.url + "/cgi-bin/whoami")                       # sign-in on the way
    assert r.status_code == 200 and r.url == h.url + "/cgi-bin/whoami", (r.status_code, r.url)
    seen = r.json()
    assert (seen["REMOTE_USER"], seen["AUTH_TYPE"], seen["SCALEKIT_EMAIL"]) == (
        "usr_demo001", "Scalekit", "ada@example.com")

    old_refresh = s.cookies.get("sk-refresh-token")
    expired = expire(idp, s)
    r = get(s, h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    assert s.cookies.get("sk-access-token") != expired
    assert s.cookies.get("sk-refresh-token") != old_refresh
    assert len(grants(idp, "refresh_token")) == 1

    r = get(s, h.url + "/api/auth/logout", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(idp.url + "/oidc/logout?")
    assert set(SESSION_COOKIES) <= cleared(r)
    assert all(s.cookies.get(n) is None for n in SESSION_COOKIES)
    r = get(s, h.url + "/cgi-bin/whoami", allow_redirects=False, headers=JSON)
    assert r.status_code == 401
    statuses = [row["status"] for row in h.access_log(at_least=6)]
    assert 500 not in statuses and 502 not in statuses, statuses


# ---------------------------------------------------------------------------------------------
# graceful restarts under load
# ---------------------------------------------------------------------------------------------

def steady(h, timeout=15):
    """Until the new generation is there and stays the same for half a second (the parent spawns
    children from its maintenance loop, about once a second)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        live = sorted(p for p, st in h.children() if st != "Z")
        if live and live == last:
            return
        last = live
        time.sleep(0.5)
    raise AssertionError("no steady set of children: %s" % last)


def snapshot(h):
    parent = h.proc.pid
    kids = h.children()
    pids = [parent] + [p for p, _ in kids]
    return {"parent_fds": fds(parent), "parent_rss_kb": rss_kb(parent),
            "children": len(kids), "zombies": [p for p, st in kids if st == "Z"],
            "child_fds": sorted(f for f in (fds(p) for p, st in kids if st != "Z") if f is not None),
            "total_fds": sum(f for f in (fds(p) for p in pids) if f is not None)}


@pytest.mark.parametrize("mpm", MPMS)
def test_graceful_restarts_under_load(idp, httpd_factory, mpm):
    restarts, threads = 20, 3
    h = ready(httpd_factory(idp=idp, mpm=mpm, timeout=60))
    s = browser()
    signin(h, s, "/dashboard/")
    jar = sent_to(s)
    statuses, errors = collections.Counter(), []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                # A new connection each time: a keep-alive connection that the server closes
                # while the client sends on it is HTTP's own race, not a lost request.
                r = requests.get(h.url + "/dashboard/", cookies=jar, allow_redirects=False,
                                 headers={"Connection": "close"}, timeout=CLIENT_TIMEOUT)
                statuses[r.status_code] += 1
            except requests.RequestException as e:
                errors.append(repr(e))
            time.sleep(0.005)

    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    samples = {}
    try:
        time.sleep(0.5)
        for i in range(1, restarts + 1):
            h.graceful(settle=True)
            steady(h)
            samples[i] = snapshot(h)
    finally:
        stop.set()
        for w in workers:
            w.join(CLIENT_TIMEOUT + 5)
    total = sum(statuses.values())
    assert errors == [], errors[:5]
    assert set(statuses) == {200} and total > restarts, statuses
    rows = [r for r in h.access_log(at_least=total + 3) if r["uri"] == "/dashboard/"]
    assert len(rows) >= total and {r["status"] for r in rows} == {200}, collections.Counter(
        r["status"] for r in rows)
    assert h.error_log().count("resuming normal operations") == restarts + 1

    # Nothing accumulates: descriptors, processes, memory (restart 5 against restart 20).
    a, b = samples[5], samples[restarts]
    assert b["parent_fds"] <= a["parent_fds"] + 2, (a, b)
    assert max(b["child_fds"]) <= max(a["child_fds"]) + 4, (a, b)
    assert b["children"] <= a["children"] + 4, (a, b)
    # An exited child is a zombie until the parent's next maintenance pass (about a second):
    # none may stay.
    deadline = time.monotonic() + 10
    while snapshot(h)["zombies"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert snapshot(h)["zombies"] == [], snapshot(h)
    if not h.asan:   # ASan keeps freed memory in quarantine: RSS is checked in the plain run
        assert b["parent_rss_kb"] <= a["parent_rss_kb"] * 1.05 + 1024, (a, b)
        rss = [samples[i]["parent_rss_kb"] for i in range(5, restarts + 1)]
        assert not all(y > x for x, y in zip(rss, rss[1:])), rss      # no steady climb
    # Still signed in with the same cookies.
    r = get(s, h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    print("graceful x%d under %s: %d requests, samples 5/%d: %s / %s"
          % (restarts, mpm, total, restarts, a, b))


def test_graceful_restart_keeps_shmcb_sessions(idp, httpd_factory):
    """With the sessions on the server (ScalekitSessionStore shmcb), a graceful restart must not
    end them: logrotate restarts Apache every night."""
    h = ready(httpd_factory(idp=idp, extra_conf="ScalekitSessionStore shmcb\n"))
    s = browser()
    signin(h, s, "/dashboard/")
    assert s.cookies.get("sk-session")
    h.graceful()
    r = get(s, h.url + "/dashboard/", allow_redirects=False, headers=JSON)
    assert r.status_code == 200, "signed out by a graceful restart: %d" % r.status_code


# ---------------------------------------------------------------------------------------------
# refresh races across processes
# ---------------------------------------------------------------------------------------------

PID_LOG = 'LogFormat "%P\\t%>s\\t%r" skpid\nCustomLog @ROOT@/logs/pid_log skpid\n'
PREFORK_MANY = "StartServers 10\nMinSpareServers 10\nMaxSpareServers 20\n"


def burst(url, jar, n):
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait(CLIENT_TIMEOUT)
        r = requests.get(url, cookies=jar, allow_redirects=False, timeout=CLIENT_TIMEOUT)
        user = r.json().get("REMOTE_USER") if r.status_code == 200 and "/cgi-bin/" in url else None
        return r.status_code, user, new_cookies(r), cleared(r)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_refresh_race_across_prefork_processes(idp, httpd_factory):
    """Two bursts of 30 parallel requests with one expired token, the IdP slow: one refresh."""
    h = httpd_factory(idp=idp, mpm="prefork", extra_conf=PREFORK_MANY + PID_LOG)
    s = browser()
    signin(h, s)
    expire(idp, s)
    jar = sent_to(s)
    old_refresh = jar["sk-refresh-token"]
    idp.fault("slow", delay=1.5, paths=["/oauth/token"])     # the pending mark is held 1.5 s
    first = burst(h.url + "/cgi-bin/whoami", jar, 30)
    second = burst(h.url + "/cgi-bin/whoami", jar, 30)       # late tabs with the old cookies
    idp.fault("none")

    for results in (first, second):
        assert [(st, u) for st, u, _, _ in results] == [(200, "usr_demo001")] * 30, results
        assert all(not c for _, _, _, c in results), "somebody was logged out"
        given = {frozenset(c.items()) for _, _, c, _ in results}
        assert len(given) == 1, "every request got the same new session"
    new = dict(next(iter({frozenset(c.items()) for _, _, c, _ in first})))
    assert set(new) == set(SESSION_COOKIES) | {"sk-profile"} and new["sk-refresh-token"] != old_refresh
    new.pop("sk-id-token")                  # its Path is the sign-in handler's
    refreshes = grants(idp, "refresh_token")
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200, [e["status"] for e in refreshes]
    pids = {line.split("\t")[0] for line in (h.root / "logs" / "pid_log").read_text().splitlines()
            if "/cgi-bin/whoami" in line}
    assert len(pids) >= 3, "the bursts were served by several processes: %s" % pids
    # The new session works on its own.
    r = get(requests, h.url + "/cgi-bin/whoami", cookies=new, allow_redirects=False)
    assert r.status_code == 200 and not set_cookies(r)
    assert len(grants(idp, "refresh_token")) == 1


def test_refresh_answer_outlives_a_busy_window(idp, httpd_factory):
    """The answer parallel requests share is kept 15 s (cookie sessions: long enough for requests
    in flight with the old cookies, short for a copy of the rotated refresh token): other
    sessions' refreshes filling the shared cache meanwhile do not push it out."""
    h = httpd_factory(idp=idp)
    s = browser()
    signin(h, s)
    expire(idp, s)
    late_tab = sent_to(s)      # the old cookies, kept
    t0 = time.monotonic()
    r = get(s, h.url + "/dashboard/", allow_redirects=False)
    assert r.status_code == 200
    # Other users refresh meanwhile: 4 sessions, for 8 s (at most 60 refreshes each).
    expired = expired_access(idp)

    def churn(_):
        other = browser()
        signin(h, other, "/dashboard/")
        for _ in range(60):
            if time.monotonic() - t0 > 8:
                break
            set_access(other, expired)
            r = get(other, h.url + "/dashboard/", allow_redirects=False)
            assert r.status_code == 200, r.status_code
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, range(4)))
    took = time.monotonic() - t0
    if took > 13:
        pytest.skip("churn took %.0fs: past the 15 s the answer is kept" % took)
    r = get(requests, h.url + "/dashboard/", cookies=late_tab, allow_redirects=False)
    assert r.status_code == 200 and not cleared(r), (r.status_code, cleared(r), took)
    spent = [e for e in grants(idp, "refresh_token")
             if e["form"].get("refresh_token") == late_tab["sk-refresh-token"]]
    assert len(spent) == 1                           # the late tab reused the answer


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_refresh_in_flight_across_a_graceful_restart(idp, httpd_factory, mpm):
    """A refresh is at the IdP when a graceful restart comes (logrotate does one every night);
    a request of the new generation with the same expired token must reuse its answer."""
    h = ready(httpd_factory(idp=idp, mpm=mpm, extra_conf="ScalekitTimeout 10\n"))
    s = browser()
    signin(h, s)
    expire(idp, s)
    jar = sent_to(s)
    url = h.url + "/cgi-bin/whoami"
    idp.fault("slow", delay=4, paths=["/oauth/token"])     # well within ScalekitTimeout 10
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(requests.get, url, cookies=jar, allow_redirects=False,
                                timeout=CLIENT_TIMEOUT)
            time.sleep(0.5)
            h.graceful()
            second = requests.get(url, cookies=jar, allow_redirects=False, timeout=CLIENT_TIMEOUT)
            first = first.result()
    finally:
        idp.fault("none")
    got = [(r.status_code, sorted(cleared(r))) for r in (first, second)]
    refreshes = grants(idp, "refresh_token")
    assert got == [(200, []), (200, [])] and len(refreshes) == 1, (
        got, [(e["status"], e.get("response_error")) for e in refreshes])
    assert new_cookies(first) == new_cookies(second)


def test_shmcb_session_store_keeps_signed_in_users(idp, httpd_factory):
    h = httpd_factory(idp=idp, extra_conf="ScalekitSessionStore shmcb\n")
    first = browser()
    signin(h, first, "/dashboard/")
    assert first.cookies.get("sk-session") and first.cookies.get("sk-access-token") is None

    def another(_):
        s = browser()
        signin(h, s, "/dashboard/")
        s.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(another, range(60)))
    r = get(first, h.url + "/dashboard/", allow_redirects=False, headers=JSON)
    assert r.status_code == 200, "the first of 61 signed-in users was logged out: %d" % r.status_code


# ---------------------------------------------------------------------------------------------
# start-up
# ---------------------------------------------------------------------------------------------

def test_startup_and_config_test_make_no_network_call(idp, httpd_factory):
    """A module that fetched anything at start-up would wait ScalekitTimeout (10 s here) on an
    IdP that hangs every request; start-up must not notice the IdP at all."""
    idp.fault("hang", delay=60)
    idp.clear_log()
    conf = "ScalekitTimeout 10\n"
    h, took = timed(httpd_factory, idp=idp, extra_conf=conf, timeout=60)
    assert took < 8, "start took %.1fs" % took
    (rc, out), took = timed(h.config_test)
    assert rc == 0 and "Syntax OK" in out and took < 8, (rc, out, took)
    _, took = timed(ready(h).graceful)
    assert took < 8, "graceful restart took %.1fs" % took
    assert get(requests, h.url + "/public/").status_code == 200
    time.sleep(0.5)
    assert idp.log() == [], idp.log()[:3]

    # The IdP gone altogether: the same.
    idp.stop()
    h2, took = timed(httpd_factory, idp=idp, extra_conf=conf, timeout=60)
    assert took < 8, "start took %.1fs" % took
    (rc, out), took = timed(h2.config_test)
    assert rc == 0 and took < 8, (rc, out, took)
    _, took = timed(ready(h2).restart)
    assert took < 8
    assert get(requests, h2.url + "/public/").status_code == 200
    # A sign-in without an IdP: the redirect needs none, so it is still made.
    r = get(requests, h2.url + "/api/auth/login", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith(idp.url + "/oauth/authorize?")


# SHA-256 failing on demand: OpenSSL's two SHA-256 entry points, preloaded into apache2, fail
# while the file named by $SK_FAULT_SHA256 exists (the module's sk_sha256 uses nothing else).
SHA256_FAULT_C = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
#include <openssl/evp.h>
static int failing(void)
{
    const char *f = getenv("SK_FAULT_SHA256");
    return f && access(f, F_OK) == 0;
}
int EVP_Digest(const void *d, size_t n, unsigned char *md, unsigned int *len, const EVP_MD *t, ENGINE *e)
{
    int (*real)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *);
    if (failing())
        return 0;
    *(void **)&real = dlsym(RTLD_NEXT, "EVP_Digest");
    return real(d, n, md, len, t, e);
}
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md)
{
    unsigned char *(*real)(const unsigned char *, size_t, unsigned char *);
    if (failing())
        return NULL;
    *(void **)&real = dlsym(RTLD_NEXT, "SHA256");
    return real(d, n, md);
}
'''


def test_signin_without_sha256_is_a_logged_500(idp, httpd_factory, module_path, tmp_path, request):
    """No PKCE challenge, no sign-in: a 500 and a log line, never a redirect carrying a
    challenge made of uninitialised bytes."""
    if is_asan_build(module_path):
        pytest.skip("the sanitizer runtimes take LD_PRELOAD under --asan")
    src, shim = tmp_path / "fault.c", tmp_path / "fault.so"
    src.write_text(SHA256_FAULT_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(shim), str(src), "-ldl"], check=True)
    # Children run as www-data: the flag lives beside the ServerRoot, not under 0700 tmp_path.
    flags = Path(tempfile.mkdtemp(prefix="sk-fault-"))
    request.addfinalizer(lambda: shutil.rmtree(flags, ignore_errors=True))
    os.chmod(flags, 0o755)
    flag = flags / "fail-sha256"
    h = httpd_factory(idp=idp, env={"LD_PRELOAD": str(shim), "SK_FAULT_SHA256": str(flag)})
    assert get(browser(), h.url + "/api/auth/login", allow_redirects=False).status_code == 302
    flag.touch()
    try:
        r = get(browser(), h.url + "/api/auth/login", allow_redirects=False)
        protected = get(browser(), h.url + "/dashboard/", allow_redirects=False)
    finally:
        flag.unlink()
    assert r.status_code == 500 and "Location" not in r.headers, (r.status_code, r.headers)
    assert protected.status_code == 500 and "Location" not in protected.headers
    assert "sign-in cannot start: no PKCE challenge" in h.error_log()
    assert get(browser(), h.url + "/api/auth/login", allow_redirects=False).status_code == 302
