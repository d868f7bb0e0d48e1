# SPDX-License-Identifier: Apache-2.0
"""Server-side sessions in httpd's shared object caches (shmcb, Redis, memcached), two servers
sharing one store, back-channel logout, revocation at sign-out, and store faults."""
import base64
import hashlib
import json
import os
import time
import types
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from httpd import DEFAULT_LOCATIONS, default_mpm
from stores import MemcachedServer, RedisServer
from test_signin import endpoint_calls, signin

MODDIR = "/usr/lib/apache2/modules"
LOAD = {"redis": "LoadModule socache_redis_module %s/mod_socache_redis.so\n" % MODDIR,
        "memcache": "LoadModule socache_memcache_module %s/mod_socache_memcache.so\n" % MODDIR,
        "shmcb": ""}


@pytest.fixture(params=["redis", "memcache"])
def store(request):
    server = (RedisServer if request.param == "redis" else MemcachedServer)()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis():
    server = RedisServer().start()
    yield server
    server.cleanup()


def stored(idp, httpd_factory, spec, extra="", **kw):
    provider = spec.split(":", 1)[0]
    return httpd_factory(idp=idp, extra_conf=LOAD[provider] + "ScalekitSessionStore %s\n" % spec + extra,
                         **kw)


def whoami(h, s):
    return s.get(h.url + "/cgi-bin/whoami", allow_redirects=False, headers={"Accept": "application/json"})


def test_browser_holds_only_an_opaque_session_id(idp, httpd_factory, browser_session):
    h = stored(idp, httpd_factory, "shmcb")
    s = browser_session()
    r = signin(h, s)
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    names = {c.name for c in s.cookies if c.domain.startswith("localhost")}
    assert "sk-session" in names
    assert not names & {"sk-access-token", "sk-id-token", "sk-refresh-token"}
    sid = s.cookies.get("sk-session")
    assert len(sid) >= 43                                        # 256 random bits
    assert whoami(h, s).status_code == 200
    # A made-up or stale session id is no session. (The changed character is always a
    # different one: replacing the last two by "AA" left the id as it was once in 1,024 runs.)
    other = sid[:20] + ("A" if sid[20] != "A" else "B") + sid[21:]
    r = requests.get(h.url + "/cgi-bin/whoami", cookies={"sk-session": other},
                     headers={"Accept": "application/json"}, allow_redirects=False)
    assert other != sid and r.status_code == 401


def test_two_servers_share_sessions(idp, httpd_factory, browser_session, store):
    idp.lifetimes(access=2)
    a = stored(idp, httpd_factory, store.spec, "ScalekitLeeway 0\n")
    b = stored(idp, httpd_factory, store.spec, "ScalekitLeeway 0\n")
    s = browser_session()
    signin(a, s)                                     # sign in on A
    idp.lifetimes(access=300)
    idp.clear_log()
    r = whoami(b, s)                                 # served on B
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001"
    time.sleep(3)                                    # the access token expires
    # Refreshed on B: here, or above when the sign-in took over a second (the token lives 1-2 s).
    assert whoami(b, s).status_code == 200
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    assert whoami(a, s).status_code == 200           # A uses B's new tokens: no second refresh
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    out = s.get(a.url + "/api/auth/logout", allow_redirects=False)     # sign out on A
    assert out.status_code == 302
    jar = {"sk-session": s.cookies.get("sk-session") or ""}
    r = requests.get(b.url + "/cgi-bin/whoami", cookies=jar, headers={"Accept": "application/json"},
                     allow_redirects=False)
    assert r.status_code == 401                      # ... and signed out on B


def logout_token(idp, sid=None, sub=None, **over):
    now = int(time.time())
    claims = {"iss": idp.url, "aud": [idp.client_id], "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex,
              "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    if sid:
        claims["sid"] = sid
    if sub:
        claims["sub"] = sub
    claims.update(over)
    return idp.mint({k: v for k, v in claims.items() if v is not None})


def session_sid(h, s):
    return s.get(h.url + "/api/auth/session").json()["session_id"]


def test_back_channel_logout_ends_sessions_everywhere(idp, httpd_factory, browser_session, redis):
    a = stored(idp, httpd_factory, redis.spec)
    b = stored(idp, httpd_factory, redis.spec)
    s = browser_session()
    signin(a, s)
    other = browser_session()
    idp.set_user(sub="usr_other", email="o@example.com")
    signin(a, other)                                  # another user: must stay signed in
    sid = session_sid(a, s)
    assert whoami(b, s).status_code == 200
    bcl = b.url + "/api/auth/backchannel-logout"
    token = logout_token(idp, sid=sid)
    r = requests.post(bcl, data={"logout_token": token})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert whoami(b, s).status_code == 401
    time.sleep(1.1)                                   # A looks at the store's sign-outs each second
    assert whoami(a, s).status_code == 401
    assert whoami(a, other).status_code == 200
    # Replayed, nonce-bearing, eventless, unsigned, foreign: all refused.
    assert requests.post(bcl, data={"logout_token": token}).status_code == 400
    for bad in (logout_token(idp, sid=sid, nonce="n"), logout_token(idp, sid=sid, events=None),
                logout_token(idp), logout_token(idp, sid=sid, aud=["skc_other"]),
                logout_token(idp, sid=sid, iat=int(time.time()) - 3600),
                idp.mint({"sid": sid, "events": {"http://schemas.openid.net/event/backchannel-logout": {}}},
                         base="id", sign="bad")):
        r = requests.post(bcl, data={"logout_token": bad})
        assert r.status_code == 400, r.text
    assert requests.post(bcl, data={}).status_code == 400
    assert requests.get(bcl).status_code == 405
    # By user: every session of the user ends (here usr_other's two).
    signin(a, s)
    assert whoami(a, s).json()["REMOTE_USER"] == "usr_other"
    assert requests.post(bcl, data={"logout_token": logout_token(idp, sub="usr_other")}).status_code == 200
    time.sleep(1.1)
    assert whoami(a, s).status_code == 401 and whoami(b, other).status_code == 401


STATUS = "<Location /sk-status>\n SetHandler scalekit-status\n Require ip 127.0.0.1\n</Location>\n"


def spread(url, jar, n=24):
    """n requests for the CGI at url, each on a connection of its own, 8 at a time: they land on
    several children and threads."""
    def one(_):
        return requests.get(url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False,
                            headers={"Accept": "application/json"}).status_code
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def copies_used(h):
    return requests.get(h.url + "/sk-status?json").json()["all_processes"]["store_copies_used"]


def test_shmcb_copies_end_with_their_record(idp, httpd_factory, browser_session):
    """With shmcb each process keeps a copy of the records it read (a warm request then takes no
    global mutex and opens no record), and no copy outlives a change: a refresh, a sign-out or
    a back-channel logout made by any process is seen by every process on its next request."""
    idp.lifetimes(access=4)
    h = stored(idp, httpd_factory, "shmcb", "ScalekitLeeway 0\n" + STATUS)
    s = browser_session()
    signin(h, s)
    idp.lifetimes(access=300)
    idp.clear_log()
    jar = {"sk-session": s.cookies.get("sk-session")}
    assert spread(h.url, jar) == [200] * 24
    before = copies_used(h)
    assert spread(h.url, jar) == [200] * 24
    assert copies_used(h) - before >= 12                 # most of them from a process's copy
    time.sleep(5)             # the first access token has expired (here or above): one refresh
    assert spread(h.url, jar) == [200] * 24
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    assert spread(h.url, jar) == [200] * 24              # the new tokens, from fresh copies
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    token = logout_token(idp, sid=session_sid(h, s))
    assert requests.post(h.url + "/api/auth/backchannel-logout",
                         data={"logout_token": token}).status_code == 200
    assert spread(h.url, jar) == [401] * 24              # ended in every process at once
    # The local IdP keeps its session (Scalekit would have ended it): a sign-in there in the
    # logout token's second would carry the ended sid and an iat no later than the sign-out.
    time.sleep(1.1)
    signin(h, s)                                         # again, then a sign-out
    jar = {"sk-session": s.cookies.get("sk-session")}
    assert spread(h.url, jar) == [200] * 24 and spread(h.url, jar) == [200] * 24
    assert s.get(h.url + "/api/auth/logout", allow_redirects=False).status_code == 302
    assert spread(h.url, jar) == [401] * 24


def test_shmcb_copies_stay_with_their_virtual_host(idp, httpd_factory, browser_session):
    """A second virtual host has a shmcb store of its own: a session of the first is no session
    there, though the same processes hold copies of its record."""
    h = stored(idp, httpd_factory, "shmcb", "<VirtualHost 127.0.0.1:@PORT1@>\n ServerName localhost\n"
               " ScalekitSessionStore shmcb:@ROOT@/run/other-sessions(1048576)\n</VirtualHost>\n",
               extra_ports=1)
    s = browser_session()
    signin(h, s)
    jar = {"sk-session": s.cookies.get("sk-session")}
    assert spread(h.url, jar) == [200] * 24 and spread(h.url, jar) == [200] * 24
    assert spread("http://localhost:%d" % h.ports[1], jar) == [401] * 24
    assert spread(h.url, jar) == [200] * 24


def test_two_servers_refreshing_at_once_keep_the_session(idp, httpd_factory, browser_session, redis):
    """In a store shared by machines the pending mark is a read, then a write: two servers can
    both refresh one session. The IdP rotates for the first and refuses the second. Made here
    in order: A's refresh is at the IdP (rotated, its answer slow to come back) when B, which did
    not see A's mark, refreshes too and is refused first. B must wait for A's answer, not end
    the session (it used to: B's response cleared the session cookie)."""
    idp.lifetimes(access=2)
    a = stored(idp, httpd_factory, redis.spec, "ScalekitLeeway 0\n")
    b = stored(idp, httpd_factory, redis.spec, "ScalekitLeeway 0\n")
    s = browser_session()
    signin(a, s)
    idp.lifetimes(access=300)
    mark = refresh_record_key(redis, first_refresh_token(idp))
    time.sleep(3)                                    # the access token expires
    idp.clear_log()
    idp.fault("slow-answer", delay=1.5, paths=["/oauth/token"], count=1)
    jar = requests.utils.dict_from_cookiejar(s.cookies)
    with ThreadPoolExecutor(1) as pool:
        on_a = pool.submit(requests.get, a.url + "/cgi-bin/whoami", cookies=jar,
                           headers={"Accept": "application/json"}, allow_redirects=False, timeout=30)
        deadline = time.monotonic() + 5
        while not endpoint_calls(idp, "/oauth/token", grant_type="refresh_token"):
            assert time.monotonic() < deadline, "A never called the token endpoint"
            time.sleep(0.02)
        time.sleep(0.2)                              # A's refresh has rotated the token
        redis.call("DEL", mark)                      # as if B had read before A wrote its mark
        on_b = requests.get(b.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False,
                            headers={"Accept": "application/json"}, timeout=30)
        on_a = on_a.result()
    calls = endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")
    # Both called; one won and one was refused (B, unless a loaded IdP served B's call first).
    assert sorted(e["status"] for e in calls) == [200, 400], calls
    for r in (on_a, on_b):
        assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001", r.text[:300]
        assert not [c for c in r.raw.headers.getlist("Set-Cookie") if "Max-Age=0" in c]
    assert "another server refreshed first" in a.error_log() + b.error_log()
    assert whoami(a, s).status_code == 200 and whoami(b, s).status_code == 200


@pytest.mark.skipif(not os.environ.get("SK_TEST_SLOW"), reason="waits 62 s for ScalekitSessionMaxAge "
                    "(SK_TEST_SLOW=1 runs it)")
def test_session_max_age_counts_from_the_sign_in(idp, httpd_factory, browser_session):
    """Refreshes keep a stored session alive only up to ScalekitSessionMaxAge after its sign-in;
    no process's copy of the record outlives it."""
    idp.lifetimes(access=20)
    h = stored(idp, httpd_factory, "shmcb", "ScalekitSessionMaxAge 60\nScalekitLeeway 0\n")
    s = browser_session()
    signin(h, s)
    start = time.monotonic()                             # the record counts from the callback, before
    jar = {"sk-session": s.cookies.get("sk-session")}
    idp.clear_log()
    for at in (25, 47):                                  # refreshed twice on the way
        time.sleep(max(0, start + at - time.monotonic()))
        assert spread(h.url, jar, 8) == [200] * 8
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 2
    time.sleep(max(0, start + 62 - time.monotonic()))  # 60 s after the sign-in
    assert spread(h.url, jar, 8) == [401] * 8


def test_back_channel_logout_without_a_store_checks_its_token(httpd, idp):
    """Cookie sessions take back-channel logouts too (test_token_binding.py), with the same checks."""
    r = requests.post(httpd.url + "/api/auth/backchannel-logout", data={"logout_token": "x"})
    assert r.status_code == 400


def test_revoke_on_logout(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, extra_conf="ScalekitRevokeOnLogout On\n")
    s = browser_session()
    signin(h, s)
    sid = s.get(h.url + "/api/auth/session").json()["session_id"]
    refresh = s.cookies.get("sk-refresh-token")
    s.get(h.url + "/api/auth/logout", allow_redirects=False)
    revokes = [e for e in idp.log() if e["path"] == "/api/v1/sessions/%s/revoke" % sid]
    assert len(revokes) == 1 and revokes[0]["status"] == 200
    assert revokes[0]["headers"].get("Authorization", "").startswith("Bearer ")
    r = requests.post(idp.url + "/oauth/token", data={"grant_type": "refresh_token", "client_id": idp.client_id,
                      "client_secret": idp.client_secret, "refresh_token": refresh})
    assert r.status_code == 400                       # the Scalekit session is gone


@pytest.fixture
def idp2(tmp_path):
    """A second environment: its own IdP process, issuer, client and sessions."""
    from idp import IdP
    server = IdP(state_dir=str(tmp_path / "idp2"), client_id="skc_second", client_secret="second-secret",
                 auto_login=True, https=False)
    server.start()
    yield server
    server.stop()


def machine_token_issuer(entry):
    token = entry["headers"].get("Authorization", "").partition(" ")[2]
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["iss"]


def test_revoke_on_logout_per_virtual_host(idp, idp2, httpd_factory, browser_session):
    """Two virtual hosts of two environments in one process: each revokes with a management
    token of its own client from its own environment, never the other's cached one."""
    # One process (threaded MPM), so that a process-wide cache would be seen by both hosts.
    mpm = default_mpm() if default_mpm() != "prefork" else "event"
    one_process = ("StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMaxRequestWorkers 8\n"
                   "MinSpareThreads 1\nMaxSpareThreads 8\n")
    second = ("<VirtualHost 127.0.0.1:@PORT1@>\n ServerName localhost:@PORT1@\n"
              " ScalekitEnvironmentURL %s\n ScalekitClientID %s\n ScalekitClientSecret %s\n"
              " ScalekitRedirectURI http://localhost:@PORT1@/api/auth/callback\n</VirtualHost>\n"
              % (idp2.url, idp2.client_id, idp2.client_secret))
    h = httpd_factory(idp=idp, mpm=mpm, extra_ports=1,
                      extra_conf="ScalekitRevokeOnLogout On\n" + one_process + second)
    b = types.SimpleNamespace(url="http://localhost:%d" % h.ports[1])

    def sign_in_and_out(server, env):
        s = browser_session()
        signin(server, s, "/dashboard/")
        sid = s.get(server.url + "/api/auth/session").json()["session_id"]
        assert s.get(server.url + "/api/auth/logout", allow_redirects=False).status_code == 302
        revokes = [e for e in env.log() if e["path"] == "/api/v1/sessions/%s/revoke" % sid]
        assert len(revokes) == 1, revokes
        return revokes[0]

    first = sign_in_and_out(h, idp)                   # the main server's token is now cached
    assert first["status"] == 200 and machine_token_issuer(first) == idp.url
    other = sign_in_and_out(b, idp2)                  # the other environment: its own token
    assert machine_token_issuer(other) == idp2.url and other["status"] == 200, other
    assert len(endpoint_calls(idp2, "/oauth/token", grant_type="client_credentials",
                              client_id=idp2.client_id)) == 1
    again = sign_in_and_out(h, idp)                   # each keeps its own cached token
    assert again["status"] == 200 and machine_token_issuer(again) == idp.url
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="client_credentials")) == 1
    assert sign_in_and_out(b, idp2)["status"] == 200
    assert len(endpoint_calls(idp2, "/oauth/token", grant_type="client_credentials")) == 1


def test_store_down_gives_503_and_recovers(idp, httpd_factory, browser_session, redis):
    h = stored(idp, httpd_factory, redis.spec)
    s = browser_session()
    signin(h, s)
    redis.stop()
    t0 = time.monotonic()
    r = whoami(h, s)
    assert r.status_code == 503 and time.monotonic() - t0 < 10
    assert "session store" in h.error_log()
    redis.start()                                     # empty again: the old session is gone
    # Each connection apr_redis pooled before the restart fails once, and then apr_redis rests
    # the server for 5 s; the service comes back by itself within RedisConnPoolTTL (15 s) or so.
    deadline, user = time.monotonic() + 40, None
    while time.monotonic() < deadline and user is None:
        s.cookies.clear()
        try:
            user = signin(h, s).json()["REMOTE_USER"]
        except AssertionError:
            time.sleep(0.5)
    assert user == "usr_demo001"


def test_store_down_can_fall_back_to_sign_in(idp, httpd_factory, browser_session, redis):
    h = stored(idp, httpd_factory, redis.spec, "ScalekitSessionStoreFailure login\n")
    s = browser_session()
    signin(h, s)
    redis.stop()
    r = s.get(h.url + "/dashboard/", allow_redirects=False)
    assert r.status_code == 302 and "/oauth/authorize" in r.headers["Location"]


def test_unloaded_store_provider_is_named_at_config_test(idp, module_path):
    from httpd import Httpd
    h = Httpd(module_path, idp=idp, extra_conf="ScalekitSessionStore redis:127.0.0.1:1\n")
    try:
        rc, out = h.config_test()
    finally:
        h.cleanup()
    assert rc != 0 and "ScalekitSessionStore redis" in out and "socache_redis" in out


def test_parallel_refresh_across_two_servers_makes_one_refresh(idp, httpd_factory, browser_session, redis):
    import concurrent.futures
    idp.lifetimes(access=2)
    a = stored(idp, httpd_factory, redis.spec, "ScalekitLeeway 0\n")
    b = stored(idp, httpd_factory, redis.spec, "ScalekitLeeway 0\n")
    s = browser_session()
    signin(a, s)
    jar = {"sk-session": s.cookies.get("sk-session")}
    idp.lifetimes(access=300)            # the refreshed tokens outlive a slow machine's burst
    time.sleep(3)
    idp.clear_log()

    def one(i):
        h = (a, b)[i % 2]
        r = requests.get(h.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False,
                         headers={"Accept": "application/json"})
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(one, range(20)))
    assert statuses == [200] * 20
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1


def test_store_records_are_sealed_and_bound_to_their_session(idp, httpd_factory, browser_session, redis):
    """Whoever can read the store finds no token; whoever can write it cannot alter a session or
    move one under another session id."""
    h = stored(idp, httpd_factory, redis.spec)
    s1, s2 = browser_session(), browser_session()
    signin(h, s1)
    signin(h, s2)
    # mod_socache_redis keys: "<namespace>:<hex of our key>"; session records end in ":s".
    records = {k: v for k, v in redis.items().items() if k.endswith(b":s".hex().encode())}
    assert len(records) == 2
    for value in redis.items().values():
        # No JWT (every one starts with the base64 of '{"alg":'), no user id, in a record or index
        # (a bare "eyJ" turns up in about one ciphertext in a hundred).
        assert b"eyJhbGci" not in value and b"usr_demo001" not in value
    for s in (s1, s2):
        for name in ("sk-access-token", "sk-id-token", "sk-refresh-token"):
            assert s.cookies.get(name) is None
    k1, k2 = sorted(records)
    # One changed character: the session is refused, with a log line that says why.
    v1 = bytearray(records[k1])
    v1[len(v1) // 2] ^= 0x01
    redis.call("SET", k1, bytes(v1))
    redis.call("SET", k2, records[k1])                 # a valid record, under another session's key
    for s in (s1, s2):
        r = whoami(h, s)
        assert r.status_code == 401, r.text
    assert h.error_log().count("a record does not open") >= 2


def test_sign_out_during_a_refresh_stays_signed_out(idp, httpd_factory, browser_session):
    """A request's refresh is at the IdP when the user signs out (or a back-channel logout ends
    the session). Its answer must not write the record back: the session id, wherever it was
    copied, stays dead."""
    idp.lifetimes(access=2)
    h = stored(idp, httpd_factory, "shmcb", "ScalekitLeeway 0\n")
    s = browser_session()
    signin(h, s)
    idp.lifetimes(access=300)
    jar = {"sk-session": s.cookies.get("sk-session")}
    time.sleep(3)                                    # the access token expires
    idp.clear_log()
    idp.fault("slow-answer", delay=3, paths=["/oauth/token"], count=1)   # the sign-out comes first
    with ThreadPoolExecutor(1) as pool:
        refreshing = pool.submit(requests.get, h.url + "/cgi-bin/whoami", cookies=jar,
                                 headers={"Accept": "application/json"}, allow_redirects=False,
                                 timeout=30)
        deadline = time.monotonic() + 5
        while not endpoint_calls(idp, "/oauth/token", grant_type="refresh_token"):
            assert time.monotonic() < deadline, "the refresh never reached the IdP"
            time.sleep(0.02)
        out = requests.get(h.url + "/api/auth/logout", cookies=jar, allow_redirects=False)
        assert out.status_code == 302
        refreshing = refreshing.result()
    assert refreshing.status_code == 401, refreshing.status_code
    r = requests.get(h.url + "/cgi-bin/whoami", cookies=jar, allow_redirects=False,
                     headers={"Accept": "application/json"})
    assert r.status_code == 401                      # the old session id stays signed out
    assert "ended while it was being refreshed" in h.error_log()


def first_refresh_token(idp):
    issued = [e["issued_refresh_token"] for e in endpoint_calls(idp, "/oauth/token",
                                                                 grant_type="authorization_code")]
    assert len(issued) == 1
    return issued[0]


def refresh_record_key(redis, refresh_token):
    """Where the module keeps a refresh's pending mark and answer: mod_socache_redis keys are
    "<namespace>:<hex of our key>", ours base64url(SHA-256 of the refresh token) + ":r"."""
    namespace = next(iter(redis.items())).split(b":", 1)[0]
    digest = base64.urlsafe_b64encode(hashlib.sha256(refresh_token.encode()).digest()).rstrip(b"=")
    return namespace + b":" + (digest + b":r").hex().encode()


def test_refresh_records_in_the_store_are_sealed(idp, httpd_factory, browser_session, redis):
    """A refresh's answer waits in the store a minute for parallel requests. Reading it must
    reveal no token, and an answer planted by whoever can write the store (here for the
    session's own refresh token, which the IdP's log tells) must not become the session."""
    idp.lifetimes(access=2)
    h = stored(idp, httpd_factory, redis.spec, "ScalekitLeeway 0\n")
    s = browser_session()
    signin(h, s)
    idp.lifetimes(access=300)
    planted = refresh_record_key(redis, first_refresh_token(idp))
    other = idp.mint({"sub": "usr_planted"}, base="access")
    redis.call("SET", planted, b"R" + json.dumps({"a": other, "r": "rt_planted"}).encode())
    time.sleep(3)                                    # the access token expires
    idp.clear_log()
    r = whoami(h, s)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001", r.text
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    assert "does not open" in h.error_log()
    answers = {k: v for k, v in redis.items().items() if k.endswith(b":r".hex().encode())}
    assert planted in answers                        # the planted answer, replaced by the real one
    for value in redis.items().values():
        assert b"eyJhbGci" not in value and b"usr_demo001" not in value


def test_validation_cache_lives_in_the_store(idp, httpd_factory, browser_session, redis):
    """A server that never saw the IdP's keys serves a session another server verified: the
    sealed record says both tokens were checked, so B needs no JWKS and verifies no signature."""
    a = stored(idp, httpd_factory, redis.spec)
    s = browser_session()
    signin(a, s)
    bearer = idp.mint({"sub": "usr_api"}, base="access")
    idp.stop()                                         # B can fetch no keys from now on
    b = httpd_factory(idp=idp, extra_conf=LOAD["redis"] + "ScalekitSessionStore %s\n" % redis.spec,
                      locations=DEFAULT_LOCATIONS + "<Location /cgi-bin>\n    ScalekitBearer On\n</Location>\n")
    r = whoami(b, s)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "usr_demo001", r.text
    # The control: a token that did not come from the store still needs the keys on B.
    r = requests.get(b.url + "/cgi-bin/whoami", headers={"Authorization": "Bearer " + bearer,
                     "Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 401
    assert "no-keys" in b.error_log()
