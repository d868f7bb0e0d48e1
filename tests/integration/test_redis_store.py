# SPDX-License-Identifier: Apache-2.0
"""Sessions in Redis through the module's own client (ScalekitSessionStore redis://...): a Redis
that wants a password or an ACL user, two servers sharing sessions, Redis restarted under load,
and the errors a wrong address or password gets."""
import threading
import time

import pytest
import requests

from stores import RedisServer
from test_signin import endpoint_calls, signin

PASSWORD = "s3cret-Redis-pw"          # never in a log line
ACL_USER, ACL_PASSWORD = "skapp", "acl-P4ss-word"


@pytest.fixture
def redis_acl():
    """A Redis whose default user wants a password, with an ACL user limited to the module's keys
    and commands."""
    server = RedisServer(requirepass=PASSWORD, acl_user=ACL_USER, acl_password=ACL_PASSWORD).start()
    yield server
    server.cleanup()


def on_redis(idp, httpd_factory, url, extra="", **kw):
    return httpd_factory(idp=idp, extra_conf="ScalekitSessionStore %s\n" % url + extra, **kw)


def whoami(h, s):
    return s.get(h.url + "/cgi-bin/whoami", allow_redirects=False, headers={"Accept": "application/json"})


def session_jar(s):
    return {"sk-session": s.cookies.get("sk-session") or ""}


def get_status(h, jar):
    try:
        return requests.get(h.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False, timeout=20,
                            headers={"Accept": "application/json"}).status_code
    except requests.RequestException as e:
        return repr(e)


def all_logs(*servers):
    """Every log file of the servers (error_log, stderr, access_log), as one text."""
    text = ""
    for h in servers:
        for f in (h.root / "logs").iterdir():
            text += f.read_text(errors="replace")
    return text


def test_two_servers_share_sessions_through_an_acl_user(idp, httpd_factory, browser_session, redis_acl,
                                                        tmp_path):
    """Server A reads the ACL user's password from a file, B from the environment; a sign-in on A
    is served and refreshed on B, and a sign-out on A is refused on B."""
    idp.lifetimes(access=2)
    url = redis_acl.url(ACL_USER, db=0)
    (tmp_path / "pw").write_text(ACL_PASSWORD + "\n")
    a = on_redis(idp, httpd_factory, url, "ScalekitLeeway 0\nScalekitSessionStorePassword file:%s\n"
                 % (tmp_path / "pw"))
    b = on_redis(idp, httpd_factory, url, "ScalekitLeeway 0\nScalekitSessionStorePassword env:SK_REDIS_PW\n",
                 env={"SK_REDIS_PW": ACL_PASSWORD})
    s = browser_session()
    signin(a, s)
    idp.lifetimes(access=300)
    idp.clear_log()
    r = whoami(b, s)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    time.sleep(3)                                    # the access token expires
    assert whoami(b, s).status_code == 200           # refreshed on B
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    assert whoami(a, s).status_code == 200           # A uses B's new tokens
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    keys = redis_acl.call("KEYS", "*")
    assert keys and all(k.startswith(b"scalekit:") for k in keys)
    for value in redis_acl.items().values():          # sealed: no token, no user id
        assert b"eyJhbGci" not in value and b"usr_demo001" not in value
    jar = session_jar(s)
    assert s.get(a.url + "/api/auth/logout", allow_redirects=False).status_code == 302
    r = requests.get(b.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False,
                     headers={"Accept": "application/json"})
    assert r.status_code == 401                      # signed out on B too
    assert PASSWORD not in all_logs(a, b) and ACL_PASSWORD not in all_logs(a, b)


def test_password_in_the_url_and_a_database(idp, httpd_factory, browser_session, redis_acl):
    """redis://:password@host/db: the default user, database 3."""
    h = on_redis(idp, httpd_factory, redis_acl.url(password=PASSWORD, db=3))
    s = browser_session()
    signin(h, s)
    assert whoami(h, s).status_code == 200
    assert redis_acl.call("DBSIZE") == 0             # nothing in database 0 ...
    assert b"db3:keys=" in redis_acl.call("INFO", "keyspace")     # ... all in 3
    assert PASSWORD not in all_logs(h)


def test_back_channel_logout_through_redis(idp, httpd_factory, browser_session, redis_acl):
    from test_scaleout import logout_token, session_sid
    url = redis_acl.url(ACL_USER, ACL_PASSWORD)
    a = on_redis(idp, httpd_factory, url)
    b = on_redis(idp, httpd_factory, url)
    s, other = browser_session(), browser_session()
    signin(a, s)
    idp.set_user(sub="usr_other", email="o@example.com")
    signin(a, other)
    assert whoami(b, s).status_code == 200
    r = requests.post(b.url + "/api/auth/backchannel-logout",
                      data={"logout_token": logout_token(idp, sid=session_sid(a, s))})
    answered = time.monotonic()
    assert r.status_code == 200
    assert whoami(b, s).status_code == 401          # the server that received it: at once
    while whoami(a, s).status_code == 200 and time.monotonic() < answered + 3:
        time.sleep(0.02)                            # the others poll the marks once a second
    took = time.monotonic() - answered
    print("back-channel logout on B: A refused the session %.0f ms after B answered" % (took * 1000))
    assert whoami(a, s).status_code == 401 and took < 1.5
    assert whoami(a, other).status_code == 200 and whoami(b, other).status_code == 200


@pytest.mark.parametrize("failure", ["503", "login"])
def test_redis_restarted_under_load(idp, httpd_factory, browser_session, redis_acl, failure):
    """Requests keep coming while Redis stops and starts again (its data saved, as a restarted
    production Redis keeps it): they get what ScalekitSessionStoreFailure says while it is away
    (503, or 401 for these non-navigation requests with login) and never another 5xx; the same
    session is served again soon after Redis is back."""
    h = on_redis(idp, httpd_factory, redis_acl.url(ACL_USER, ACL_PASSWORD),
                 "ScalekitSessionStoreFailure %s\n" % failure)
    s = browser_session()
    signin(h, s)
    jar = session_jar(s)
    seen, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            seen.append((time.monotonic(), get_status(h, jar)))
            time.sleep(0.02)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        redis_acl.call("SAVE")
        redis_acl.stop()
        down = time.monotonic()
        time.sleep(1.5)
        redis_acl.start()
        up = time.monotonic()
        # A process that failed to reconnect while Redis was away (or loading its data) rests up
        # to 1 s before its next try, and the load may not reach every process: wait that out,
        # then until the last 10 answers came after it and are 200.
        every_process_tried = up + 1.5
        deadline = up + 10
        while time.monotonic() < deadline and [st for t, st in seen[-10:]
                                               if st != 200 or t < every_process_tried]:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    away = 503 if failure == "503" else 401
    statuses = {st for _, st in seen}
    assert statuses <= {200, away}, statuses
    assert [1 for t, st in seen if st == away and down < t], "no request saw Redis away"
    back = [t for t, st in seen if st == 200 and t > up]
    last_away = max(t for t, st in seen if st == away)
    assert back and last_away < up + 3, "not served again within 3 s of Redis' return"
    print("Redis away %.1f s; served again %.2f s after it came back, the last refusal %.2f s after;"
          " %d requests: %s" % (up - down, back[0] - up, last_away - up, len(seen),
                                {st: sum(1 for _, x in seen if x == st) for st in statuses}))
    assert whoami(h, s).status_code == 200
    log = h.error_log()
    assert "session store redis://%s@127.0.0.1:%d/0: " % (ACL_USER, redis_acl.port) in log
    assert "connected again" in log
    assert ACL_PASSWORD not in all_logs(h)


def test_wrong_password_is_named_in_the_error_log(idp, httpd_factory, browser_session, redis_acl):
    """apache2 -t cannot tell (it does not connect); the first request can: a 503 and a log line
    naming the store and the cause, without the password."""
    wrong = "not-the-Password-42"
    h = on_redis(idp, httpd_factory, redis_acl.url(ACL_USER), "ScalekitSessionStorePassword %s\n" % wrong)
    rc, out = h.config_test()
    assert rc == 0, out
    s = browser_session()
    r = s.get(h.url + "/api/auth/login", allow_redirects=True)
    assert r.status_code == 503
    log = h.error_log()
    assert ("session store redis://%s@127.0.0.1:%d/0: Redis refused the user %s and password (WRONGPASS"
            % (ACL_USER, redis_acl.port, ACL_USER)) in log, log[-2000:]
    assert wrong not in all_logs(h)
    # No password at all, where Redis wants one.
    n = on_redis(idp, httpd_factory, redis_acl.url())
    r = browser_session().get(n.url + "/api/auth/login", allow_redirects=True)
    assert r.status_code == 503
    assert "Redis wants a password (NOAUTH" in n.error_log()


def test_the_acl_user_may_be_refused_a_database(idp, httpd_factory, browser_session):
    """An ACL user without SELECT: a clear line, not a crash."""
    server = RedisServer(acl_user=ACL_USER, acl_password=ACL_PASSWORD,
                         acl_rules=["~scalekit:*", "+get", "+set", "+del"]).start()
    try:
        h = on_redis(idp, httpd_factory, server.url(ACL_USER, ACL_PASSWORD, db=2))
        r = browser_session().get(h.url + "/api/auth/login", allow_redirects=True)
        assert r.status_code == 503
        assert "cannot select database 2 (NOPERM" in h.error_log()
    finally:
        server.cleanup()


CONFIG_ERRORS = [
    ("ScalekitSessionStore redis://127.0.0.1:99999\n", "the port is not a number"),
    ("ScalekitSessionStore rediss://127.0.0.1\n", "rediss:// (TLS) is not supported"),
    ("ScalekitSessionStore redis://127.0.0.1/x\n", "the database is not a number"),
    ("ScalekitSessionStore redis://app@127.0.0.1\n", "names the user app but no password"),
    ("ScalekitSessionStore redis://app:pw1@127.0.0.1\nScalekitSessionStorePassword pw2\n",
     "the password is given twice"),
    ("ScalekitSessionStore shmcb\nScalekitSessionStorePassword pw\n", "not a redis:// address"),
    ("ScalekitSessionStorePassword pw\n", "not a redis:// address"),
    ("ScalekitSessionStore redis://127.0.0.1\nScalekitSessionStorePassword env:SK_NOT_SET_ANYWHERE\n",
     "the environment variable 'SK_NOT_SET_ANYWHERE' is not set"),
    ("ScalekitSessionStore redis://127.0.0.1\nScalekitSessionStorePassword file:/nonexistent/pw\n",
     "ScalekitSessionStorePassword: cannot read '/nonexistent/pw'"),
    ("ScalekitSessionStore redis://u:hunter2-secret@127.0.0.1:0\n", "the port is not a number"),
]


@pytest.mark.parametrize("conf,message", CONFIG_ERRORS)
def test_store_address_and_password_are_checked_at_config_test(idp, module_path, conf, message):
    from httpd import Httpd
    h = Httpd(module_path, idp=idp, extra_conf=conf)
    try:
        rc, out = h.config_test()
    finally:
        h.cleanup()
    assert rc != 0 and message in out, out
    assert "hunter2" not in out and "pw1" not in out and "pw2" not in out


def test_parallel_refresh_across_two_servers_makes_one_refresh(idp, httpd_factory, browser_session, redis_acl):
    """The refresh marks and answers live in Redis too: one refresh for 20 parallel requests on
    two servers."""
    from concurrent.futures import ThreadPoolExecutor
    idp.lifetimes(access=2)
    url = redis_acl.url(ACL_USER, ACL_PASSWORD)
    a = on_redis(idp, httpd_factory, url, "ScalekitLeeway 0\n")
    b = on_redis(idp, httpd_factory, url, "ScalekitLeeway 0\n")
    s = browser_session()
    signin(a, s)
    jar = session_jar(s)
    idp.lifetimes(access=300)
    time.sleep(3)
    idp.clear_log()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda i: get_status((a, b)[i % 2], jar), range(20)))
    assert statuses == [200] * 20
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1


def redis_gets(redis):
    stats = redis.call("INFO", "commandstats").decode()
    for line in stats.splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_copies_follow_every_servers_writes(idp, httpd_factory, browser_session, redis_acl):
    """Each process keeps copies of the records it read and Redis tells it of every change
    (client-side caching): warm requests make no round trip, and a sign-out on A is refused on
    B's next request, whose copies said otherwise a moment before."""
    from test_scaleout import STATUS, copies_used, spread
    url = redis_acl.url(ACL_USER, ACL_PASSWORD)
    a = on_redis(idp, httpd_factory, url)
    b = on_redis(idp, httpd_factory, url, STATUS)
    deadline = time.monotonic() + 10     # every worker's invalidation thread is up (not mod_cgid's)
    while time.monotonic() < deadline and len(redis_acl.call("CLIENT", "LIST", "TYPE", "pubsub")
                                               .splitlines()) < len(a.children()) + len(b.children()) - 2:
        time.sleep(0.05)
    s = browser_session()
    signin(a, s)
    jar = session_jar(s)
    assert spread(b.url, jar) == [200] * 24 and spread(b.url, jar) == [200] * 24
    before, gets = copies_used(b), redis_gets(redis_acl)
    assert spread(b.url, jar) == [200] * 24
    warm_gets = redis_gets(redis_acl) - gets
    # Most from a process's copy (prefork may start a process that has none yet); besides the
    # records a process had no copy of, each process may read the sign-out generation once a
    # second (httpd_signout.c).
    polls = len(b.children())
    assert copies_used(b) - before >= 12 and warm_gets <= 12 + polls, (
        copies_used(b) - before, warm_gets, polls)
    out = s.get(a.url + "/api/auth/logout", allow_redirects=False)   # sign out on A ...
    answered = time.monotonic()
    assert out.status_code == 302
    first = get_status(b, jar)                                         # ... refused on B at once
    refused = time.monotonic()
    print("warm requests on B: %d GETs to Redis for 24; B refused the session %.1f ms after A's "
          "sign-out answered" % (warm_gets, (refused - answered) * 1000))
    assert first == 401
    assert spread(b.url, jar) == [401] * 24


def test_copies_are_not_used_while_invalidations_are_away(idp, httpd_factory, browser_session, redis_acl):
    """While the invalidation connection cannot be had (here: the ACL user lost SUBSCRIBE), copies
    are not used: a record removed meanwhile is seen gone at once. With SUBSCRIBE back, copies
    are used again."""
    from test_scaleout import STATUS, copies_used, spread
    h = on_redis(idp, httpd_factory, redis_acl.url(ACL_USER, ACL_PASSWORD), STATUS)
    s = browser_session()
    signin(h, s)
    jar = session_jar(s)
    assert spread(h.url, jar) == [200] * 24 and spread(h.url, jar) == [200] * 24
    redis_acl.call("ACL", "SETUSER", ACL_USER, "-subscribe")
    redis_acl.call("CLIENT", "KILL", "TYPE", "pubsub")
    before = copies_used(h)
    assert spread(h.url, jar) == [200] * 24
    assert copies_used(h) == before                    # every request read Redis
    assert "no invalidations from Redis (SUBSCRIBE __redis__:invalidate: NOPERM" in h.error_log()
    record = [k for k in redis_acl.call("KEYS", "scalekit:*:s")]
    assert len(record) == 1
    redis_acl.call("DEL", record[0])                   # as another server's sign-out would
    assert spread(h.url, jar) == [401] * 24
    signin(h, s)
    jar = session_jar(s)
    redis_acl.call("ACL", "SETUSER", ACL_USER, "+subscribe")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and copies_used(h) == before:
        assert spread(h.url, jar, 8) == [200] * 8
        time.sleep(0.2)
    assert copies_used(h) > before, "copies not used again once invalidations were back"


def test_copies_stop_when_redis_falls_silent(idp, httpd_factory, browser_session, redis_acl):
    """A Redis that stops answering without closing its connections (here: SIGSTOP, as a cut
    network would) is noticed by the invalidation connection's PING (after 5 s of silence, given
    ScalekitTimeout to answer): copies stop being used and requests get the store-failure answer,
    rather than 200 from copies for up to 30 s. Service comes back with Redis."""
    import signal
    from test_scaleout import STATUS, spread
    h = on_redis(idp, httpd_factory, redis_acl.url(ACL_USER, ACL_PASSWORD), "ScalekitTimeout 1\n" + STATUS)
    s = browser_session()
    signin(h, s)
    jar = session_jar(s)
    assert spread(h.url, jar) == [200] * 24 and spread(h.url, jar) == [200] * 24
    watchers = len(redis_acl.call("CLIENT", "LIST", "TYPE", "pubsub").splitlines())
    redis_acl.proc.send_signal(signal.SIGSTOP)
    try:
        stopped, seen = time.monotonic(), []      # each process pings on its own 5 s beat
        while time.monotonic() < stopped + 15 and h.error_log().count("(no answer to PING)") < watchers:
            seen += spread(h.url, jar, 8)    # from copies, or 503 (timed out) without one
        noticed = time.monotonic() - stopped
        after = spread(h.url, jar)
    finally:
        redis_acl.proc.send_signal(signal.SIGCONT)
    print("Redis silent: copies given up by all %d processes after %.1f s; before: %s"
          % (watchers, noticed, sorted(set(seen))))
    assert h.error_log().count("no invalidations from Redis (no answer to PING)") >= watchers
    assert noticed < 12
    assert set(seen) <= {200, 503} and after == [503] * 24, after
    deadline, back = time.monotonic() + 10, None     # every process back (each has its back-off)
    while time.monotonic() < deadline and back != [200] * 24:
        back = spread(h.url, jar)
    assert back == [200] * 24, back
