#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Soak: N minutes of mixed load against one apache2 with mod_scalekit and the local IdP.

    tests/soak/soak.py                       # 10 minutes, 64 connections, mpm_event
    tests/soak/soak.py --minutes 0.75        # the short version the test suite runs
    tests/soak/soak.py --mpm prefork --json /tmp/soak.json --keep

Each of the --connections client threads keeps one keep-alive connection to httpd and picks, per
step, one of (weights in ACTIONS):
  valid     a valid access token of one of --users users (minted by the IdP) -> 200
  cgi       the same on /cgi-bin/whoami: 200 and REMOTE_USER is that user (no identity mix-up)
  session   the thread's own signed-in session (cookies from a real sign-in) -> 200
  refresh   that session with an expired access token -> 200 and four new cookies (the ID token's at
            the handler's path); now and then
            a "late tab" repeats the request with the old cookies -> 200 and the same cookies
  invalid   forged, foreign, expired, garbage tokens -> 401
  signin    login -> IdP (auto sign-in) -> callback -> the page: 302, 302, 302, 200
  signout   /api/auth/logout -> 302 to the IdP with the four cookies cleared
Every 10 s (--sample) it records the RSS, descriptors (sockets apart) and threads of httpd's
processes. It fails (exit 1) on any 5xx, any connection error, any unexpected answer, or when the
children's memory or non-socket descriptors grow by --max-growth (5 %) or more between the end of
the warm-up and the end of the run. Sockets are reported, and only bounded (every worker thread may
hold one client connection and one kept-alive connection to the IdP).
"""
import argparse
import collections
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))

from httpd import Httpd, build_module  # noqa: E402
from idp import IdP  # noqa: E402

ACTIONS = {"valid": 50, "cgi": 4, "session": 10, "refresh": 12, "invalid": 10, "signin": 8,
           "signout": 6}
LATE_TAB = 0.25            # share of refreshes followed by a late request with the old cookies
REQUEST_TIMEOUT = 30       # seconds; a request that takes longer is a failure
KEEPALIVE = 30             # KeepAliveTimeout of the soak's httpd; clients reconnect after 20 s idle
JSON_ACCEPT = "application/json"
COOKIES = ("sk-access-token", "sk-id-token", "sk-refresh-token", "sk-profile")


def procs_conf(mpm, connections):
    """A fixed set of processes: memory is compared per process, so none may come and go."""
    if mpm == "prefork":
        n = connections + 8
        return ("StartServers %d\nMinSpareServers %d\nMaxSpareServers %d\nServerLimit %d\n"
                "MaxRequestWorkers %d\nMaxConnectionsPerChild 0\n" % (n, n, n + 1, n + 1, n + 1))
    # Two children with, together, a few more threads than connections: every thread is busy
    # often enough that the warm-up sees each of them through its first sign-in and refresh.
    threads = max(connections // 2 + 8, 25)
    return ("StartServers 2\nServerLimit 2\nThreadLimit %d\nThreadsPerChild %d\nMaxRequestWorkers %d\n"
            "MinSpareThreads %d\nMaxSpareThreads %d\nMaxConnectionsPerChild 0\n"
            % (threads, threads, 2 * threads, threads, 2 * threads))


# ---------------------------------------------------------------------------------------------
# process sampling
# ---------------------------------------------------------------------------------------------

def proc_info(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        sockets = other = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:"):
                sockets += 1
            else:
                other += 1
    except (OSError, ValueError):
        return None
    return {"pid": pid, "ppid": int(st["PPid"]), "state": st["State"].split()[0],
            "rss_kb": int(st.get("VmRSS", "0 kB").split()[0]),
            "vsz_kb": int(st.get("VmSize", "0 kB").split()[0]),
            "threads": int(st["Threads"]), "sockets": sockets, "fds": other}


def sample(h, mpm, t):
    parent = h.proc.pid
    rows = [i for i in (proc_info(p) for p in h.pids()) if i]
    workers = [r for r in rows if r["ppid"] == parent and (mpm == "prefork" or r["threads"] > 1)]
    others = [r for r in rows if r["pid"] != parent and r not in workers]      # cgid
    par = next((r for r in rows if r["pid"] == parent), None)
    return {"t": round(t, 1), "parent": par, "workers": {r["pid"]: r for r in workers},
            "others": others,
            "rss_kb": sum(r["rss_kb"] for r in workers), "fds": sum(r["fds"] for r in workers),
            "sockets": sum(r["sockets"] for r in workers), "n": len(workers)}


def growth(a, b):
    """Growth from sample a to sample b over the workers present in both."""
    common = sorted(set(a["workers"]) & set(b["workers"]))
    out = {"pids": common, "replaced": sorted(set(a["workers"]) ^ set(b["workers"]))}
    for key in ("rss_kb", "fds", "sockets"):
        x = sum(a["workers"][p][key] for p in common)
        y = sum(b["workers"][p][key] for p in common)
        out[key] = (x, y, round(100.0 * (y - x) / x, 2) if x else 0.0)
    return out


# ---------------------------------------------------------------------------------------------
# the clients
# ---------------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_action = collections.Counter()        # (action, status) -> n
        self.statuses = collections.Counter()
        self.failures = []                             # (t, action, what)
        self.failure_count = 0
        self.errors = collections.Counter()
        self.actions = collections.Counter()
        self.retries = 0                               # keep-alive races, retried like a browser

    def answer(self, action, status):
        with self.lock:
            self.by_action[(action, status)] += 1
            self.statuses[status] += 1

    def fail(self, action, what):
        with self.lock:
            self.failure_count += 1
            if len(self.failures) < 50:
                self.failures.append((round(time.time(), 3), action, what[:300]))


class Conn:
    """One keep-alive connection, reopened when the server closes it or after a long idle.

    A server may close an idle keep-alive connection just as the client sends on it (mpm_event
    does when all its workers are busy); a browser then sends the request again on a new
    connection, and so does this client, once, counting it in stats.retries. Any other failure,
    and a failure on a new connection, is an error."""

    RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self, host, port, host_header, stats):
        self.host, self.port, self.host_header, self.stats = host, port, host_header, stats
        self.c = None
        self.last = 0.0

    def request(self, method, path, headers=None):
        if self.c is not None and time.monotonic() - self.last > KEEPALIVE - 10:
            self.close()
        hdrs = {"Host": self.host_header, "User-Agent": "sk-soak"}
        hdrs.update(headers or {})
        for attempt in (1, 2):
            reused = self.c is not None and self.c.sock is not None
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
            try:
                self.c.request(method, path, headers=hdrs)
                r = self.c.getresponse()
                body = r.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 1 and reused and method == "GET" and isinstance(e, self.RETRYABLE):
                    with self.stats.lock:
                        self.stats.retries += 1
                    continue
                raise ConnectionError("%s %s: %r" % (method, path, e)) from None
        self.last = time.monotonic()
        if r.will_close:
            self.close()
        return r.status, r.getheaders(), body

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def cookie_header(cookies):
    return "; ".join("%s=%s" % kv for kv in cookies.items())


def parse_set_cookies(headers, paths=None):
    """(set: name -> value, cleared: names); paths, when given, gets name -> Path of those set."""
    set_, cleared = {}, set()
    for k, v in headers:
        if k.lower() != "set-cookie":
            continue
        name, _, rest = v.partition("=")
        if "Max-Age=0" in v:
            cleared.add(name)
        else:
            set_[name] = rest.split(";", 1)[0]
            if paths is not None:
                attrs = dict(a.strip().partition("=")[::2] for a in rest.split(";")[1:])
                paths[name] = attrs.get("Path", "/")
    return set_, cleared


def path_matches(cookie_path, path):
    """RFC 6265 5.1.4, as a browser sends a cookie."""
    if cookie_path == "/" or path == cookie_path:
        return True
    return path.startswith(cookie_path) and (cookie_path.endswith("/") or path[len(cookie_path)] == "/")


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


class Client(threading.Thread):
    def __init__(self, n, soak):
        super().__init__(daemon=True, name="client-%d" % n)
        self.soak = soak
        self.rng = random.Random(soak.seed * 1000 + n)
        self.app = Conn("127.0.0.1", soak.h.port, "localhost:%d" % soak.h.port, soak.stats)
        self.idp = Conn("127.0.0.1", soak.idp.port, "127.0.0.1:%d" % soak.idp.port, soak.stats)
        self.session = None                 # cookies of this thread's signed-in browser
        self.paths = {}                     # their Path attributes
        names, weights = zip(*ACTIONS.items())
        self.names, self.weights = names, weights

    def run(self):
        s = self.soak
        while not s.stop.is_set():
            action = self.rng.choices(self.names, self.weights)[0]
            try:
                getattr(self, "do_" + action)()
            except ConnectionError as e:
                s.stats.errors[type(e).__name__] += 1
                s.stats.fail(action, "connection: %s" % e)
            except Exception as e:        # a bug of the soak itself must show, not hide
                s.stats.fail(action, "client exception: %r" % e)
            s.stats.actions[action] += 1
        self.app.close()
        self.idp.close()

    # --- helpers --------------------------------------------------------------------------------
    def get(self, action, path, cookies=None, accept=None):
        headers = {}
        if cookies:
            headers["Cookie"] = cookie_header(cookies)
        if accept:
            headers["Accept"] = accept
        status, hdrs, body = self.app.request("GET", path, headers)
        self.soak.stats.answer(action, status)
        if status >= 500:
            self.soak.stats.fail(action, "%d on %s: %s" % (status, path[:80], body[:200]))
        return status, hdrs, body

    def sent(self, cookies, path):
        """The cookies of the jar a browser sends with a request for path."""
        return {k: v for k, v in cookies.items() if path_matches(self.paths.get(k, "/"), path)}

    def expect(self, action, what, ok):
        if not ok:
            self.soak.stats.fail(action, what)
        return ok

    # --- actions ----------------------------------------------------------------------------------
    def do_valid(self):
        sub, access, id_ = self.rng.choice(self.soak.users)
        cookies = {"sk-access-token": access}
        if self.rng.random() < 0.5:
            cookies["sk-id-token"] = id_
        st, _, _ = self.get("valid", "/dashboard/", cookies)
        self.expect("valid", "valid token of %s: %d" % (sub, st), st == 200)

    def do_cgi(self):
        sub, access, id_ = self.rng.choice(self.soak.users)
        st, _, body = self.get("cgi", "/cgi-bin/whoami", {"sk-access-token": access, "sk-id-token": id_})
        if self.expect("cgi", "cgi for %s: %d" % (sub, st), st == 200):
            seen = json.loads(body).get("REMOTE_USER")
            self.expect("cgi", "identity mix-up: %s saw %s" % (sub, seen), seen == sub)

    def do_session(self):
        if self.session is None:
            return self.do_signin()
        st, hdrs, _ = self.get("session", "/dashboard/", self.sent(self.session, "/dashboard/"))
        set_, cleared = parse_set_cookies(hdrs)
        self.expect("session", "signed-in session: %d, cleared %s" % (st, sorted(cleared)),
                    st == 200 and not cleared)

    def do_refresh(self):
        if self.session is None:
            if not self.do_signin():
                return
        old = self.sent(dict(self.session, **{"sk-access-token": self.soak.expired}), "/dashboard/")
        st, hdrs, _ = self.get("refresh", "/dashboard/", old)
        set_, cleared = parse_set_cookies(hdrs, self.paths)
        if not self.expect("refresh", "refresh: %d, set %s, cleared %s" % (st, sorted(set_), sorted(cleared)),
                           st == 200 and set(set_) == set(COOKIES) and not cleared):
            self.session = None
            return
        self.session = set_
        if self.rng.random() < LATE_TAB:
            st, hdrs, _ = self.get("refresh", "/dashboard/", old)
            again, cleared = parse_set_cookies(hdrs)
            self.expect("refresh", "late tab: %d, same cookies %s, cleared %s"
                        % (st, again == set_, sorted(cleared)), st == 200 and again == set_ and not cleared)

    def do_invalid(self):
        why, token = self.rng.choice(self.soak.invalid)
        st, _, _ = self.get("invalid", "/dashboard/", {"sk-access-token": token}, JSON_ACCEPT)
        self.expect("invalid", "%s token: %d" % (why, st), st == 401)

    def do_signin(self):
        st, hdrs, _ = self.get("signin", "/api/auth/login?return_to=%2Fdashboard%2F")
        loc = header(hdrs, "Location") or ""
        if not self.expect("signin", "login: %d %s" % (st, loc[:80]), st == 302 and "/oauth/authorize?" in loc):
            return False
        state, _ = parse_set_cookies(hdrs)
        u = urllib.parse.urlsplit(loc)
        ist, ihdrs, _ = self.idp.request("GET", u.path + "?" + u.query)
        cb = header(ihdrs, "Location") or ""
        if not self.expect("signin", "IdP authorize: %d %s" % (ist, cb[:80]), ist == 302 and "/api/auth/callback?" in cb):
            return False
        cu = urllib.parse.urlsplit(cb)
        st, hdrs, body = self.get("signin", cu.path + "?" + cu.query, state)
        set_, _ = parse_set_cookies(hdrs, self.paths)
        if not self.expect("signin", "callback: %d %s" % (st, body[:120]),
                           st == 302 and set(COOKIES) <= set(set_)):
            return False
        self.session = {k: set_[k] for k in COOKIES}
        st, _, _ = self.get("signin", "/dashboard/", self.sent(self.session, "/dashboard/"))
        return self.expect("signin", "first page after sign-in: %d" % st, st == 200)

    def do_signout(self):
        if self.session is None:
            return self.do_signin()
        st, hdrs, _ = self.get("signout", "/api/auth/logout", self.sent(self.session, "/api/auth/logout"))
        _, cleared = parse_set_cookies(hdrs)
        loc = header(hdrs, "Location") or ""
        self.expect("signout", "logout: %d %s cleared %s" % (st, loc[:60], sorted(cleared)),
                    st == 302 and "/oidc/logout?" in loc and set(COOKIES) <= cleared)
        self.session = None


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.stats = Stats()
        self.stop = threading.Event()
        self.samples = []
        self.h = self.idp = None

    def log(self, msg):
        print("[soak %6.1fs] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def setup(self):
        a = self.args
        # Not under /tmp/skhttpd-*: a long run must not share a name pattern that other test
        # runs on the machine may sweep.
        self.base = tempfile.mkdtemp(prefix="sk-soak-", dir=a.root_base)
        os.chmod(self.base, 0o755)
        tempfile.tempdir, saved = self.base, tempfile.tempdir
        self.idp = IdP(state_dir=os.path.join(self.base, "idp"), auto_login=True, https=False)
        self.idp.start()
        self.idp.lifetimes(access=3600)          # minted users stay valid for the whole run
        module = a.module
        if not module:
            module, err = build_module()
            if err:
                raise SystemExit("mod_scalekit does not build:\n" + err)
        conf = procs_conf(a.mpm, a.connections) + "KeepAliveTimeout %d\nMaxKeepAliveRequests 1000\n" % KEEPALIVE
        if a.cache_entries is not None:
            conf += "ScalekitCacheEntries %d\n" % a.cache_entries
        conf += "".join(line + "\n" for line in a.conf)
        try:
            self.h = Httpd(module, idp=self.idp, mpm=a.mpm, extra_conf=conf, loglevel="warn", timeout=60,
                           env=dict(kv.split("=", 1) for kv in a.env))
        finally:
            tempfile.tempdir = saved
        self.h.start()
        self.log("httpd %s (%s, %s), IdP %s" % (self.h.url, a.mpm, self.h.root, self.idp.url))
        self.users = []
        for i in range(a.users):
            sub = "usr_soak%05d" % i
            claims = {"sub": sub, "email": "u%d@example.com" % i, "sid": "ses_soak%05d" % i}  # one session
            self.users.append((sub, self.idp.mint(claims, base="access"),
                               self.idp.mint(claims, base="id")))
        now = int(time.time())
        self.expired = self.idp.mint({"exp": now - 600, "iat": now - 900, "nbf": now - 900}, base="access")
        self.invalid = [
            ("bad-signature", self.idp.mint({}, base="access", sign="bad")),
            ("unknown-key", self.idp.mint({}, base="access", sign="unknown")),
            ("alg-none", self.idp.mint({}, base="access", sign="none")),
            ("other-audience", self.idp.mint({"aud": ["skc_other"]}, base="access")),
            ("other-issuer", self.idp.mint({"iss": "https://evil.example"}, base="access")),
            ("expired-no-refresh", self.expired),
            ("garbage", "not.a.token"),
            ("truncated", self.users[0][1][:-20]),
        ]

    def sampler(self):
        while not self.stop.wait(self.args.sample):
            self.take_sample()

    def take_sample(self):
        s = sample(self.h, self.args.mpm, time.monotonic() - self.t0)
        self.samples.append(s)
        with self.stats.lock:
            answers = sum(self.stats.statuses.values())
        self.log("workers %d  rss %7.1f MiB  fds %4d  sockets %4d  answers %7d  failures %d"
                 % (s["n"], s["rss_kb"] / 1024.0, s["fds"], s["sockets"], answers, self.stats.failure_count))

    def run(self):
        a = self.args
        self.t0 = time.monotonic()
        self.setup()
        duration = a.minutes * 60.0
        warmup = a.warmup if a.warmup is not None else max(15.0, 0.2 * duration)
        clients = [Client(i, self) for i in range(a.connections)]
        self.take_sample()
        start = time.monotonic()
        for c in clients:
            c.start()
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        while time.monotonic() - start < duration and self.h.proc.poll() is None:
            time.sleep(0.2)
        self.stop.set()
        stuck = []
        for c in clients:
            c.join(REQUEST_TIMEOUT + 10)
            if c.is_alive():
                stuck.append(c.name)
        elapsed = time.monotonic() - start
        time.sleep(0.5)
        self.take_sample()
        return self.report(elapsed, warmup, start - self.t0, stuck)

    def report(self, elapsed, warmup, start_offset, stuck):
        a, st = self.args, self.stats
        problems = []
        if self.h.proc.poll() is not None:
            problems.append("httpd exited with %s" % self.h.proc.returncode)
        five = {k: v for k, v in st.statuses.items() if k >= 500}
        if five:
            problems.append("5xx answers: %s" % five)
        if st.failure_count:
            problems.append("%d unexpected answers or errors (first: %s)" % (st.failure_count, st.failures[:3]))
        if stuck:
            problems.append("client threads stuck: %s" % stuck)
        access = self.h.access_log()
        logged = collections.Counter(r["status"] for r in access)
        if any(k >= 500 for k in logged):
            problems.append("5xx in the access log: %s" % {k: v for k, v in logged.items() if k >= 500})
        # warm-up: the first sample at or after it (times are from the start of the load)
        after = [s for s in self.samples if s["t"] - start_offset >= warmup]
        base = after[0] if len(after) >= 2 else None
        end = self.samples[-1]
        g = growth(base, end) if base else None
        # Diagnostic only: the growth over the second half of the measured span. Memory that
        # still fills (a cache) or settles (the allocator) grows less there; a leak grows alike.
        late = None
        if base:
            mid_t = base["t"] + (end["t"] - base["t"]) / 2.0
            mid = next((s for s in self.samples if s["t"] >= mid_t), None)
            if mid is not None and mid is not end:
                late = growth(mid, end)
        if g is None:
            problems.append("run too short for a growth figure (warm-up %.0fs)" % warmup)
        else:
            if g["replaced"]:
                problems.append("worker processes came or went: %s" % g["replaced"])
            if g["rss_kb"][2] >= a.max_growth:
                problems.append("children's RSS grew %.1f%% after warm-up (%d -> %d KiB)"
                                % (g["rss_kb"][2], g["rss_kb"][0], g["rss_kb"][1]))
            x, y, pct = g["fds"]
            if y > x + 2 and pct >= a.max_growth:
                problems.append("children's descriptors grew %.1f%% after warm-up (%d -> %d)" % (pct, x, y))
        # Per worker thread at most: its client's connection, libcurl's kept-alive connection to
        # the IdP, the two ends of the socketpair libcurl keeps per handle, and mod_cgid's two
        # sockets to its daemon while a CGI request runs.
        threads = sum(r["threads"] for r in end["workers"].values())
        most = max(s["sockets"] for s in self.samples)
        if most > 6 * threads + 16 * max(1, end["n"]):
            problems.append("children held %d sockets for %d threads" % (most, threads))
        reports = self.h.sanitizer_reports()
        if reports:
            problems.append("sanitizer reports in httpd's logs:\n" + reports[:3000])
        zombies = [r["pid"] for r in end["workers"].values() if r["state"] == "Z"]
        if zombies:
            problems.append("zombie children: %s" % zombies)
        idp_stats = self.idp.stats()
        result = {
            "ok": not problems, "problems": problems,
            "settings": {"minutes": a.minutes, "connections": a.connections, "mpm": a.mpm,
                         "users": a.users, "cache_entries": a.cache_entries, "conf": a.conf,
                         "env": a.env, "warmup_s": warmup, "actions": ACTIONS},
            "elapsed_s": round(elapsed, 1),
            "answers": sum(st.statuses.values()),
            "rate_per_s": round(sum(st.statuses.values()) / elapsed, 1) if elapsed else 0,
            "statuses": dict(sorted(st.statuses.items())),
            "by_action": {"%s %d" % k: v for k, v in sorted(st.by_action.items())},
            "actions": dict(st.actions),
            "access_log_statuses": dict(sorted(logged.items())),
            "failures": st.failures, "failure_count": st.failure_count,
            "keepalive_retries": st.retries,
            "idp": {"grants": idp_stats.get("grants"), "refresh_tokens": idp_stats.get("refresh_tokens")},
            "growth_after_warmup": g,
            "growth_second_half": late,
            "samples": [{"t": s["t"], "workers": s["n"], "rss_kb": s["rss_kb"], "fds": s["fds"],
                         "sockets": s["sockets"],
                         "per_worker": {p: {k: r[k] for k in ("rss_kb", "vsz_kb", "fds", "sockets", "threads")}
                                        for p, r in s["workers"].items()},
                         "parent_rss_kb": s["parent"]["rss_kb"] if s["parent"] else None,
                         "parent_fds": s["parent"]["fds"] if s["parent"] else None}
                        for s in self.samples],
            "server_root": str(self.h.root),
        }
        print(self.summary(result), flush=True)
        return result

    @staticmethod
    def summary(r):
        lines = ["", "==== soak: %s" % ("OK" if r["ok"] else "FAILED"),
                 "%d answers in %.0fs (%.0f/s), %s, %d connections" % (
                     r["answers"], r["elapsed_s"], r["rate_per_s"], r["settings"]["mpm"],
                     r["settings"]["connections"]),
                 "statuses: %s (keep-alive races retried: %d)" % (r["statuses"], r["keepalive_retries"]),
                 "by action: %s" % r["by_action"],
                 "IdP: grants %s, refresh tokens %s" % (r["idp"]["grants"], r["idp"]["refresh_tokens"])]
        g = r["growth_after_warmup"]
        if g:
            lines.append("after warm-up (%.0fs) to the end, %d workers: RSS %d -> %d KiB (%+.2f%%), "
                         "descriptors %d -> %d (%+.2f%%), sockets %d -> %d"
                         % ((r["settings"]["warmup_s"], len(g["pids"])) + g["rss_kb"] + g["fds"] + g["sockets"][:2]))
        late = r.get("growth_second_half")
        if late:
            lines.append("second half of that span alone: RSS %d -> %d KiB (%+.2f%%)" % late["rss_kb"])
        lines.append("samples (t, workers' RSS MiB, fds, sockets): " + ", ".join(
            "%.0fs %.1f/%d/%d" % (s["t"], s["rss_kb"] / 1024.0, s["fds"], s["sockets"]) for s in r["samples"]))
        for p in r["problems"]:
            lines.append("PROBLEM: " + p)
        return "\n".join(lines)

    def close(self, keep):
        if self.h:
            self.h.stop()
        if self.idp:
            self.idp.stop()
        if not keep and getattr(self, "base", None):
            shutil.rmtree(self.base, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--mpm", choices=("event", "worker", "prefork"), default="event")
    ap.add_argument("--users", type=int, default=200, help="distinct users with minted tokens")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds of load before the growth baseline (default: max(15, 20%% of the run))")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between process samples")
    ap.add_argument("--max-growth", type=float, default=5.0, help="percent allowed after warm-up")
    ap.add_argument("--cache-entries", type=int, default=None,
                    help="ScalekitCacheEntries (default: the module's default)")
    ap.add_argument("--conf", action="append", default=[], metavar="LINE",
                    help="one more line of httpd configuration (repeatable)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for apache2, e.g. MALLOC_ARENA_MAX=1 (repeatable)")
    ap.add_argument("--mix", help="action weights instead of the default, e.g. valid=9,invalid=1")
    ap.add_argument("--module", help="mod_scalekit.so (default: $MOD_SCALEKIT_SO or build the tree's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("--keep", action="store_true", help="keep httpd's ServerRoot and the IdP's state")
    ap.add_argument("--root-base", default="/var/tmp", help="where the run's directory goes")
    args = ap.parse_args(argv)
    if args.mix:
        weights = dict((k, float(v)) for k, v in (kv.split("=") for kv in args.mix.split(",")))
        unknown = set(weights) - set(ACTIONS)
        if unknown:
            ap.error("--mix: unknown actions %s" % sorted(unknown))
        ACTIONS.clear()
        ACTIONS.update(weights)
    soak = Soak(args)
    result = None
    try:
        result = soak.run()
    finally:
        keep = args.keep or result is None or not result["ok"]
        soak.close(keep)
        if keep and soak.h:
            print("ServerRoot kept: %s" % soak.h.root)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return 0 if result and result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
