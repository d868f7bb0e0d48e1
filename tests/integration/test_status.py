# SPDX-License-Identifier: Apache-2.0
"""SetHandler scalekit-status: counters as text, JSON and the Prometheus text format, across
processes."""
import json
import re
import time

import requests

from test_signin import signin

LOCATIONS = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
             "<Location /dashboard>\n AuthType Scalekit\n Require valid-user\n</Location>\n"
             "<Location /sk-status>\n SetHandler scalekit-status\n Require ip 127.0.0.1\n</Location>\n")


def test_status_counts_what_happened(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=LOCATIONS + "<Location /cgi-bin>\n AuthType Scalekit\n"
                      " Require valid-user\n</Location>\n")
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    s = browser_session()
    signin(h, s)
    for _ in range(5):
        assert s.get(h.url + "/cgi-bin/whoami").status_code == 200
    bogus = idp.mint({"aud": ["skc_other"]}, base="access")
    requests.get(h.url + "/dashboard/", cookies={"sk-access-token": bogus}, headers={"Accept": "application/json"})
    after = requests.get(h.url + "/sk-status?json").json()
    all_ = after["all_processes"]
    assert all_["logins_started"] - before["logins_started"] == 1
    assert all_["callbacks_ok"] - before["callbacks_ok"] == 1
    assert all_["sessions_valid"] - before["sessions_valid"] >= 6
    assert all_["token_refusals"]["bad-audience"] >= 1
    assert "validations" in after["this_process"] and "jwks_fetches" in after["this_process"]
    text = requests.get(h.url + "/sk-status").text
    assert text.startswith("mod_scalekit status") and "callbacks_ok" in text


def test_status_counters_survive_graceful_restart(idp, httpd_factory, browser_session):
    """The counters are server-wide and since start: a graceful restart (a log rotation, a
    config reload) keeps them; what the processes count after it adds to them."""
    h = httpd_factory(idp=idp, locations=LOCATIONS)
    s = browser_session()
    signin(h, s)
    for _ in range(3):
        assert s.get(h.url + "/dashboard/").status_code == 200
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert before["callbacks_ok"] >= 1 and before["sessions_valid"] >= 3
    h.graceful()
    mid = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert mid["callbacks_ok"] == before["callbacks_ok"]
    assert mid["sessions_valid"] == before["sessions_valid"]
    assert s.get(h.url + "/dashboard/").status_code == 200
    after = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert after["sessions_valid"] == before["sessions_valid"] + 1


def test_status_counts_every_parallel_request(idp, httpd_factory, browser_session):
    """Each thread counts into a copy of its own (shards of shared memory, added up when read):
    300 requests on 12 parallel connections, spread over the children and their threads, are
    counted exactly once each."""
    from concurrent.futures import ThreadPoolExecutor
    h = httpd_factory(idp=idp, locations=LOCATIONS)
    s = browser_session()
    signin(h, s)
    cookies = requests.utils.dict_from_cookiejar(s.cookies)
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]

    def burst(_):
        with requests.Session() as one:
            one.trust_env = False
            return [one.get(h.url + "/dashboard/", cookies=cookies).status_code for _ in range(25)]

    with ThreadPoolExecutor(12) as pool:
        statuses = [st for part in pool.map(burst, range(12)) for st in part]
    assert statuses == [200] * 300
    after = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert after["sessions_valid"] - before["sessions_valid"] == 300
    assert after["authn_requests"] - before["authn_requests"] == 300
    assert after["sessions_missing"] == before["sessions_missing"]


# ---------------------------------------------------------------- Prometheus text format 0.0.4

PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_prometheus(text):
    """A strict reader of the text exposition format 0.0.4 as the module writes it: every line
    a HELP, a TYPE or a sample `name{labels} value`; each family's HELP and TYPE once, before
    its samples; counters end in _total; values are numbers; no sample twice. Returns
    {(name, frozenset(labels)): value} and {name: type}."""
    assert text.endswith("\n") and "\r" not in text
    samples, types, helps, closed, current = {}, {}, set(), set(), None
    for line in text.splitlines():
        assert line, "empty line"
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % NAME, line)
            assert m, "bad comment line: %r" % line
            kind, name, rest = m.groups()
            if current and name != current:
                closed.add(current)
            assert name not in closed, "family %s split: %r" % (name, line)
            current = name
            if kind == "HELP":
                assert name not in helps, "HELP twice: %s" % name
                helps.add(name)
            else:
                assert name not in types, "TYPE twice: %s" % name
                assert rest in ("counter", "gauge"), line
                assert not any(n == name for n, _ in samples), "TYPE after samples: %s" % name
                types[name] = rest
            continue
        m = SAMPLE.match(line)
        assert m, "bad sample line: %r" % line
        name, labels, value = m.groups()
        assert name == current, "sample %s outside its family (%s)" % (name, current)
        pairs = []
        if labels is not None:
            pos = 0
            while pos < len(labels):
                lm = LABEL.match(labels, pos)
                assert lm, "bad labels: %r" % line
                pairs.append(lm.groups()[:2])
                pos = lm.end()
            assert pairs, line
            assert len({k for k, _ in pairs}) == len(pairs), "label twice: %r" % line
        v = float(value)                      # a number (the format allows NaN/Inf too)
        assert v == v and v >= 0, line
        key = (name, frozenset(pairs))
        assert key not in samples, "sample twice: %r" % line
        samples[key] = v
    for name in {n for n, _ in samples}:
        assert name in helps and name in types, "no HELP or TYPE for %s" % name
        if types[name] == "counter":
            assert name.endswith("_total"), "counter %s does not end in _total" % name
    assert helps == set(types), (helps ^ set(types))
    return samples, types


def prom(h, **kw):
    r = requests.get(h.url + "/sk-status", timeout=30, **kw)
    assert r.status_code == 200, r.status_code
    assert r.headers["Content-Type"] == PROM_TYPE, r.headers["Content-Type"]
    return parse_prometheus(r.text)[0]


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_status_prometheus_format_and_counts(idp, httpd_factory, browser_session):
    """?format=prometheus and a scraper's Accept both give the 0.0.4 text format, which a strict
    reader accepts; its counters move with a sign-in, a refused token and a refresh, and the
    text and JSON answers stay as they were."""
    h = httpd_factory(idp=idp, locations=LOCATIONS + "<Location /cgi-bin>\n AuthType Scalekit\n"
                      " Require valid-user\n</Location>\n", extra_conf="ScalekitLeeway 0\n")
    before = prom(h, params="format=prometheus")
    for accept in ("text/plain;version=0.0.4", "text/plain; version=0.0.4; q=0.5, */*;q=0.1",
                   "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                   "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"):
        assert prom(h, headers={"Accept": accept})
    assert value(before, "scalekit_logins_total") == 0

    s = browser_session()
    signin(h, s)
    for _ in range(3):
        assert s.get(h.url + "/cgi-bin/whoami").status_code == 200
    bogus = idp.mint({"aud": ["skc_other"]}, base="access")
    assert requests.get(h.url + "/dashboard/", cookies={"sk-access-token": bogus},
                        headers={"Accept": "application/json"}).status_code == 401
    # A refresh: the session's access token replaced by a valid one that has just expired.
    now = int(time.time())
    expired = idp.mint({"exp": now - 5, "iat": now - 305, "nbf": now - 305}, base="access")
    for c in s.cookies:
        if c.name == "sk-access-token":
            c.value = expired
    assert s.get(h.url + "/cgi-bin/whoami").status_code == 200
    after = prom(h, params="format=prometheus")

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("scalekit_logins_total") == 1
    assert moved("scalekit_callbacks_total", result="ok") == 1
    assert moved("scalekit_callbacks_total", result="refused") == 0
    assert moved("scalekit_requests_total", result="valid") >= 4
    assert moved("scalekit_requests_total", result="missing") == 1
    assert moved("scalekit_token_refusals_total", reason="bad-audience") >= 1
    assert moved("scalekit_refreshes_total", result="ok") == 1
    assert moved("scalekit_refreshes_total", result="failed") == 0
    assert value(after, "scalekit_jwks_fetches_total") >= 1
    assert value(after, "scalekit_jwks_fetch_failures_total") == 0
    assert value(after, "scalekit_store_errors_total") == 0
    pids = {dict(labels)["pid"] for name, labels in after if name.startswith("scalekit_process_")}
    assert len(pids) == 1 and pids.pop().isdigit()
    # The other answers are as before.
    assert requests.get(h.url + "/sk-status").text.startswith("mod_scalekit status")
    assert requests.get(h.url + "/sk-status",
                        headers={"Accept": "application/json"}).json()["all_processes"]
    assert requests.get(h.url + "/sk-status?json").headers["Content-Type"] == "application/json"


def test_status_prometheus_counts_store_failures(idp, httpd_factory, browser_session):
    """A Redis session store (with a password) that goes away: each store operation that fails
    counts in scalekit_store_errors_total; session reads and copies used count while it answers."""
    from stores import RedisServer
    redis = RedisServer(requirepass="fleet-Redis-pw").start()
    try:
        h = httpd_factory(idp=idp, locations=LOCATIONS, extra_conf="ScalekitSessionStore %s\n"
                          % redis.url(password="fleet-Redis-pw"))
        s = browser_session()
        signin(h, s, return_to="/dashboard/")
        for _ in range(4):
            assert s.get(h.url + "/dashboard/").status_code == 200
        mid = prom(h, params="format=prometheus")
        assert value(mid, "scalekit_store_errors_total") == 0
        assert (value(mid, "scalekit_store_reads_total")
                + value(mid, "scalekit_store_copies_used_total")) >= 4
        redis.stop()
        # A process's copies serve until its invalidation connection is seen gone (a moment).
        statuses, deadline = [], time.monotonic() + 10
        while statuses.count(503) < 3 and time.monotonic() < deadline:
            statuses.append(s.get(h.url + "/dashboard/", headers={"Accept": "application/json"}
                                  ).status_code)
            time.sleep(0.05)
        assert set(statuses) <= {200, 503} and statuses.count(503) == 3, statuses
        after = prom(h, params="format=prometheus")
        assert value(after, "scalekit_store_errors_total") >= 3
        assert value(after, "scalekit_store_reads_total") > value(mid, "scalekit_store_reads_total")
    finally:
        redis.cleanup()


def test_default_validation_cache_holds_a_larger_sites_sessions(idp, httpd_factory):
    """By default each process remembers the validated tokens of more than 4,096 sessions (it
    held 4,096 a cache before, and 10,000 users in rotation then found it 12-25 % of the time):
    4,500 sessions of distinct users through one connection (one process) all stay, 9,000
    entries in its two caches, and the second round is all hits."""
    import http.client
    n = 4500
    h = httpd_factory(idp=idp, locations=LOCATIONS,
                      extra_conf="MaxKeepAliveRequests 0\nKeepAliveTimeout 60\n")
    pairs = idp.mint_sessions(n, prefix="usr_cache")
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)

    def get(path, cookie=None):
        c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        r = c.getresponse()
        return r.status, r.read()

    try:
        def one_round():
            for access, id_token in pairs:
                status, _ = get("/dashboard/", "sk-access-token=%s; sk-id-token=%s"
                                % (access, id_token))
                assert status == 200
            status, body = get("/sk-status?json")
            assert status == 200
            return json.loads(body)["this_process"]
        first = one_round()
        second = one_round()
    finally:
        c.close()
    assert first["cache_entries"] >= 2 * n, first
    assert second["pid"] == first["pid"]
    assert second["validations"] - first["validations"] == 2 * n
    assert second["cache_hits"] - first["cache_hits"] == 2 * n, (first, second)
