#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Sign-in round trips per second: N parallel "browsers" for a fixed time (or count).

    bench/signin.py --url http://127.0.0.1:PORT/bench/index.html --duration 10 --clients 8

Each round trip is a fresh browser (no cookies): GET the protected page as a top-level
navigation -> 302 to the identity provider's authorize endpoint (auto-login) -> 302 to the
module's callback -> 302 back to the page -> 200. It works the same for mod_scalekit and
mod_auth_openidc: both start a sign-in from a protected page. Connections are kept alive per
browser thread (as a browser would); cookies are per host and honour Path and removal.

Prints one JSON line: roundtrips, errors (with samples), rate, p50/p99 latency in ms, hops.
Only loopback URLs are accepted. Used by bench/bench.py, which also imports `Browser`.
"""
import argparse
import http.client
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse

NAV_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Dest": "document",
    "User-Agent": "mod_scalekit-bench/1",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class SignInError(RuntimeError):
    pass


def _check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    if host not in LOOPBACK and not (host or "").startswith("127."):
        raise SignInError("only loopback URLs are allowed: %s" % url)


class Browser:
    """A minimal browser: keep-alive connections, a per-host cookie jar, redirects followed.
    Every connection goes to 127.0.0.1 whatever the host name (localhost and 127.0.0.1 are
    two sites for cookies, one machine for sockets)."""

    def __init__(self, ca=None, timeout=30):
        self.conns = {}
        self.jar = {}              # host:port -> {name: (value, path)}
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=ca) if ca else None

    def reset_cookies(self):
        self.jar = {}

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def _conn(self, scheme, host, port):
        key = (scheme, host, port)
        conn = self.conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.ctx)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            conn._create_connection = (lambda addr, timeout=None, src=None, port=port:
                                       socket.create_connection(("127.0.0.1", port), timeout))
            self.conns[key] = conn
        return conn

    def cookie_header(self, hostport, path):
        jar = self.jar.get(hostport, {})
        pairs = ["%s=%s" % (n, v) for n, (v, p) in jar.items()
                 if path == p or path.startswith(p.rstrip("/") + "/") or p == "/"]
        return "; ".join(pairs)

    def _store(self, hostport, set_cookies):
        jar = self.jar.setdefault(hostport, {})
        for line in set_cookies:
            parts = [x.strip() for x in line.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {}
            for a in parts[1:]:
                k, _, v = a.partition("=")
                attrs[k.lower()] = v
            gone = False
            if "max-age" in attrs:
                try:
                    gone = int(attrs["max-age"]) <= 0
                except ValueError:
                    pass
            elif "expires" in attrs and "1970" in attrs["expires"]:
                gone = True
            if gone or value == "":
                jar.pop(name, None)
            else:
                jar[name] = (value, attrs.get("path") or "/")

    def get(self, url, headers=None):
        """One GET (no redirect following): (status, headers list, body bytes)."""
        u = urllib.parse.urlsplit(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        hostport = "%s:%d" % (u.hostname, port)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        h = dict(NAV_HEADERS)
        h.update(headers or {})
        cookie = self.cookie_header(hostport, u.path or "/")
        if cookie:
            h["Cookie"] = cookie
        for attempt in (0, 1):
            conn = self._conn(u.scheme, u.hostname, port)
            try:
                conn.request("GET", path, headers=h)
                resp = conn.getresponse()
                body = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()               # a kept-alive connection the server had closed
                if attempt:
                    raise
        hdrs = resp.getheaders()
        self._store(hostport, [v for k, v in hdrs if k.lower() == "set-cookie"])
        return resp.status, hdrs, body

    def follow(self, url, max_hops=10):
        """GET url and follow redirects: (final status, final url, hops, body)."""
        hops = 0
        while True:
            status, hdrs, body = self.get(url)
            loc = next((v for k, v in hdrs if k.lower() == "location"), None)
            if status in (301, 302, 303, 307, 308) and loc:
                hops += 1
                if hops > max_hops:
                    raise SignInError("more than %d redirects (last %s)" % (max_hops, url))
                url = urllib.parse.urljoin(url, loc)
                _check_loopback(url)
                continue
            return status, url, hops, body


def sign_in(url, ca=None):
    """One sign-in from a fresh browser; returns (browser, final url). Raises on failure."""
    _check_loopback(url)
    b = Browser(ca=ca)
    status, final, hops, body = b.follow(url)
    if status != 200:
        raise SignInError("sign-in from %s ended with %s at %s: %r" % (url, status, final, body[:300]))
    return b, final


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run(url, duration=10.0, clients=8, count=None, ca=None, hops_expected=None):
    """Round trips from `clients` threads until `duration` seconds (or `count` round trips)."""
    _check_loopback(url)
    lock = threading.Lock()
    lat, errors, samples, hops_seen = [], [0], [], {}
    started = time.monotonic()
    deadline = started + duration
    budget = [count if count is not None else float("inf")]

    def worker():
        b = Browser(ca=ca)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                b.reset_cookies()
                t0 = time.monotonic()
                try:
                    status, final, hops, body = b.follow(url)
                    ok = status == 200 and final == url and (hops_expected is None or hops == hops_expected)
                    why = "status %s at %s after %d hops" % (status, final, hops)
                except Exception as exc:          # a broken round trip is counted, not fatal
                    ok, hops, why = False, -1, "%s: %s" % (type(exc).__name__, exc)
                    b.close()
                dt = time.monotonic() - t0
                with lock:
                    if ok:
                        lat.append(dt)
                        hops_seen[hops] = hops_seen.get(hops, 0) + 1
                    else:
                        errors[0] += 1
                        if len(samples) < 5:
                            samples.append(why[:300])
        finally:
            b.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    elapsed = time.monotonic() - started
    lat.sort()
    return {
        "url": url, "clients": clients, "duration_s": round(elapsed, 3),
        "roundtrips": len(lat), "errors": errors[0], "error_samples": samples,
        "rate": len(lat) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": (percentile(lat, 50) or 0) * 1000, "p99_ms": (percentile(lat, 99) or 0) * 1000,
        "hops": {str(k): v for k, v in sorted(hops_seen.items())},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the protected page (loopback only)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=None, help="stop after this many round trips")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--ca", default=None, help="CA file when the IdP is https")
    ap.add_argument("--hops", type=int, default=None, help="expected redirects per round trip")
    a = ap.parse_args(argv)
    if a.duration > 600 or (a.count is not None and a.count > 1000000):
        ap.error("bounded runs only: --duration <= 600, --count <= 1000000")
    print(json.dumps(run(a.url, a.duration, a.clients, a.count, a.ca, a.hops)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
