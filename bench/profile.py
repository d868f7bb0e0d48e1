#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Profile mod_scalekit's request path: where a protected request spends its time.

    bench/profile callgrind        # exact instruction counts per request (noise-free)
    bench/profile perf             # perf record (cpu-clock) on httpd's children under wrk load
    bench/profile callgrind --requests 4000 --keep

callgrind: one apache2 -X (single process) under valgrind --tool=callgrind per workload, each
driven by wrk (1 thread, 4 connections) for a bounded time, then SIGTERM; the per-request cost of a
function is its inclusive instruction count divided by the requests the access log shows.
Workloads, on the same file (/bench/index.html, and the unprotected alias /pub/index.html):

  noauth  the file through /bench/ of a server without the module: the limit (the same
          <Location>s as the module's server, Require all granted in place of its rules)
  noauth-cookie  the same with the warm cookies sent anyway: httpd's own cost of their bytes
  noauth-pub, noauth-pub-cookie  the file through /pub/ of that server, without and with the
          cookies: the same URLs as open and open-cookie (their bases)
  open    the file through /pub/ of the module's server: loaded, not protecting this location
          (what the every-request hooks cost a page the module does not guard)
  open-cookie  the same with the warm cookies sent (the fixup strips them before the handler)
  role    the warm cookies on /role/, the same file behind "Require scalekit-role admin"
  warm    one session's cookies from a real sign-in
  users   N users' cookies in rotation (real sign-ins, as bench/bench.py makes them)

perf: the same server as the benchmark (mpm_event, 2 children), wrk -t2 -c64 with the warm or
users cookies, perf record -e cpu-clock (this VM has no hardware counters) with DWARF call graphs
on the children; prints the DSO split, the top symbols, and the inclusive share of sk_check_authn
and its callees.

Everything is loopback, bounded in time, and every server is stopped on the way out.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "bench"))

import bench  # noqa: E402
from httpd import Httpd, build_module  # noqa: E402
from idp import IdP  # noqa: E402

# /pub/: a location of its own without AuthType Scalekit, on every server alike, so that each
# request of every workload matches one <Location> (httpd merges its config: ~1k instructions).
PUB_CONF = "Alias /pub/ @DOCROOT@/bench/\n<Location /pub>\n    Require all granted\n</Location>\n"
# The same file behind a role rule (the "role" workload): Require reads the token's roles array.
ROLE_CONF = """Alias /role/ @DOCROOT@/bench/
<Location /role>
    AuthType Scalekit
    Require scalekit-role admin
</Location>
"""


def workload_path(name):
    return {"open": "/pub/", "open-cookie": "/pub/", "noauth-pub": "/pub/", "noauth-pub-cookie": "/pub/",
            "role": "/role/"}.get(name, "/bench/") + "index.html"


# Workloads on a server without mod_scalekit (the limit); the others load it.
PLAIN = ("noauth", "noauth-cookie", "noauth-pub", "noauth-pub-cookie")
WORKLOADS = "noauth,noauth-cookie,noauth-pub,noauth-pub-cookie,open,open-cookie,warm,role,users"

# Functions of the request path whose per-request cost the callgrind report prints (inclusive).
CG_FUNCS = [
    "ap_process_request", "ap_process_request_internal", "ap_run_check_user_id",
    "sk_check_authn", "sk_request_cookie", "sk_cookie_get", "sk_cookie_each",
    "sk_validate_into_request", "sk_validate", "siphash13", "lookup", "sk_claims_ref",
    "sk_claims_unref", "sk_session_release", "sk_publish", "sk_env_safe", "sk_setenv",
    "sk_claim_string", "sk_short_hash", "apr_table_setn", "apr_table_unset",
    "apr_pool_cleanup_register", "pthread_rwlock_rdlock", "pthread_rwlock_unlock",
    "ap_run_handler", "ap_run_log_transaction", "ap_run_fixups", "ap_run_auth_checker",
    "ap_add_common_vars", "ap_add_cgi_vars", "ap_run_header_parser", "ap_run_insert_filter",
    "sk_scrub_claim_lookalikes", "sk_strip_cookies_fixup", "sk_insert_private_filter",
    "sk_private_filter",
]
# What each workload is compared with: the same request bytes on the server without the module.
SAME_BYTES = {"open": "noauth-pub", "open-cookie": "noauth-pub-cookie", "warm": "noauth-cookie",
              "role": "noauth-cookie", "users": "noauth-cookie"}


class ValgrindHttpd(Httpd):
    """apache2 -X under callgrind; the output file is written by www-data, so into a 0777 dir."""

    # -X logs no "resuming normal operations" (no parent), and the profiler sends no restart.
    ready_line = None

    def __init__(self, *a, cg_out, **kw):
        self.cg_out = cg_out
        super().__init__(*a, **kw)

    def _cmd(self, *args):
        cmd = super()._cmd(*args)
        if "-DFOREGROUND" in args:
            # Collected only inside ap_run_process_connection: under mpm_event one call serves
            # one request of a kept-alive connection; start-up and the listener stay out.
            # One file per process (%p): mod_cgid's daemon is a fork of the server, and two
            # processes writing one file made callgrind refuse to start.
            return ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % self.cg_out,
                    "--separate-threads=no", "--dump-instr=no", "--collect-atstart=no",
                    "--toggle-collect=ap_run_process_connection", *cmd, "-X"]
        return cmd


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_sessions(module_path, idp, users, work):
    """Cookie sets: one real sign-in (warm) and `users` real sign-ins (rotation)."""
    h = Httpd(module_path, idp=idp, locations=bench.SCALEKIT_LOCATIONS, loglevel="warn",
              extra_conf=bench.MPM_CONF)
    bench.bench_files(h)
    h.start()
    try:
        jar = bench.scalekit_signin(h)
        warm = work / "warm.sets"
        warm.write_text(bench.cookie_line_from_jar(jar) + "\n")
        sets = {"warm": warm, "noauth": None, "noauth-cookie": warm, "noauth-pub": None,
                "noauth-pub-cookie": warm, "open": None, "open-cookie": warm, "role": warm}
        if users:
            sets["users"] = bench.make_user_sets(h, idp, users, work / "users.sets")
        return sets
    finally:
        h.stop()
        h.cleanup()


def callgrind(a, module_path, idp, sets, work):
    outdir = Path(tempfile.mkdtemp(prefix="skprof-"))
    os.chmod(outdir, 0o777)
    results = {}
    for name in a.workloads:
        if name not in sets:
            continue
        plain = name in PLAIN
        h = ValgrindHttpd(module_path, idp=None if plain else idp, load_scalekit=not plain,
                          locations="" if plain else bench.SCALEKIT_LOCATIONS, loglevel="warn",
                          extra_conf="ThreadsPerChild 8\nThreadLimit 8\n" + PUB_CONF +
                          # the server without the module has the same <Location>s (see
                          # bench.mirror_locations): the difference is the module's alone
                          (bench.mirror_locations(bench.SCALEKIT_LOCATIONS + ROLE_CONF)
                           if plain else ROLE_CONF),
                          cg_out=outdir / ("callgrind.%s.%%p.out" % name), timeout=180)
        bench.bench_files(h)
        path = workload_path(name)
        try:
            h.start()
            out = outdir / ("callgrind.%s.%d.out" % (name, h.proc.pid))
            # valgrind creates the file as root at start-up and writes it at exit, by then
            # as the server's user: hand the file over.
            if os.geteuid() == 0 and out.exists():
                import pwd
                pw = pwd.getpwnam("www-data")
                os.chown(out, pw.pw_uid, pw.pw_gid)
            st, body = bench.probe(h, path, bench.first_headers(sets[name]))
            if st != 200:
                raise SystemExit("probe %s: %s %r" % (name, st, body))
            log("callgrind %-13s driving %s for up to %d s (%s)" % (
                name, path, a.seconds, "no module" if plain else "mod_scalekit loaded"))
            off = bench.access_log_size(h)
            res = bench.wrk(h, path, sets[name], a.seconds, 1, 4)
            statuses, users, anon = bench.read_log_slice(h, off, res["requests"])
            n = sum(statuses.values())
            if set(statuses) != {200}:
                raise SystemExit("callgrind %s: statuses %s" % (name, dict(statuses)))
        finally:
            h.proc.send_signal(signal.SIGTERM)
            try:
                h.proc.wait(120)
            except subprocess.TimeoutExpired:
                pass
            h.stop()
            if not a.keep:
                h.cleanup()
        # The probe is a request too.
        n += 1
        inc, objs = annotate(out, inclusive=True)
        exc, objs2 = annotate(out, inclusive=False)
        objs.update(objs2)
        results[name] = {"requests": n, "inclusive": inc, "exclusive": exc, "objs": objs, "file": str(out)}
        log("  %d requests; callgrind data %s" % (n, out))
    report_callgrind(results)
    if not a.keep:
        shutil.rmtree(outdir, ignore_errors=True)
    return results


LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?):(\S+?)(?: \[(.*)\])?\s*$")


def annotate(out, inclusive):
    """{function: Ir} from callgrind_annotate, all functions. callgrind_annotate lists a function
    once per source file its code came from (inlining): the self costs of those add up; for an
    inclusive cost the largest one is the function's."""
    cmd = ["callgrind_annotate", "--threshold=100", "--inclusive=%s" % ("yes" if inclusive else "no"), str(out)]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    costs, objs = {}, {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(3) in ("function", "TOTALS"):
            continue
        ir = int(m.group(1).replace(",", ""))
        fn = m.group(3)
        if inclusive:
            costs[fn] = max(costs.get(fn, 0), ir)
        else:
            costs[fn] = costs.get(fn, 0) + ir
        if m.group(4):
            objs[fn] = os.path.basename(m.group(4))
    return costs, objs


# The first validation of a token (RS256, claims, the cache insert): in a short run with many
# users it is a visible share; the steady state is sk_check_authn without it.
COLD = ("sk_jwt_verify", "sk_jwt_check_claims", "sk_claims_new")


def report_callgrind(results):
    if not results:
        return
    names = list(results)
    per = {n: {f: v / results[n]["requests"] for f, v in results[n]["inclusive"].items()} for n in names}
    print("\ncallgrind: instructions per request, inclusive (apache2 -X, event MPM, same file, keep-alive)")
    print("%-34s" % "function" + "".join("%14s" % n for n in names))
    for f in ["ap_run_process_connection", "ap_read_request", "ap_process_async_request"] + CG_FUNCS + list(COLD):
        if any(f in per[n] for n in names):
            print("%-34s" % f + "".join("%14s" % ("{:,.0f}".format(per[n][f]) if f in per[n] else "-") for n in names))
    base = per.get("noauth", {}).get("ap_run_process_connection")
    print()
    for n in names:
        total = per[n].get("ap_run_process_connection")
        cold = sum(per[n].get(f, 0) for f in COLD)
        ref = SAME_BYTES.get(n)
        ref_total = per.get(ref, {}).get("ap_run_process_connection")
        if total and ref_total:
            print("%-13s %s instr/request steady (first validations out), %s vs %s "
                  "(the same request bytes, no module)" % (
                      n, "{:,.0f}".format(total - cold), "{:+,.0f}".format(total - cold - ref_total), ref))
    print()
    for n in names:
        total = per[n].get("ap_run_process_connection")
        authn = per[n].get("sk_check_authn")
        cold = sum(per[n].get(f, 0) for f in COLD)
        line = "%-7s %s instr/request (ap_run_process_connection)" % (n, "{:,.0f}".format(total) if total else "?")
        if base and total:
            line += ", %+.1f%% vs noauth" % ((total / base - 1) * 100)
        if authn and total:
            line += "; sk_check_authn %s = %.1f%%" % ("{:,.0f}".format(authn), 100 * authn / total)
            if cold:
                hit = authn - cold
                line += "; without first validations %s = %.1f%% (steady %+.1f%% vs noauth)" % (
                    "{:,.0f}".format(hit), 100 * hit / (total - cold),
                    ((total - cold) / base - 1) * 100 if base else 0)
        print(line)
    for n in names:
        if n == "noauth":
            continue
        exc, objs = results[n]["exclusive"], results[n]["objs"]
        reqs = results[n]["requests"]
        total_ex = sum(exc.values())
        print("\n%s: top self costs, whole process (instructions per request, share)" % n)
        for v, f in sorted(((v, f) for f, v in exc.items()), reverse=True)[:25]:
            print("  %10s  %5.1f%%  %s (%s)" % ("{:,.0f}".format(v / reqs), 100 * v / total_ex, f, objs.get(f, "")))
        authn = results[n]["inclusive"].get("sk_check_authn")
        if authn:
            print("\n%s: mod_scalekit's functions, inclusive (instructions per request, share of sk_check_authn)" % n)
            inc = results[n]["inclusive"]
            mine = [(v, f) for f, v in inc.items() if objs.get(f, "").startswith("mod_scalekit")
                    and f != "sk_check_authn" and v / reqs >= 20]
            for v, f in sorted(mine, reverse=True)[:25]:
                print("  %10s  %5.1f%%  %s" % ("{:,.0f}".format(v / reqs), 100 * v / authn, f))
            print("  self cost inside mod_scalekit.so: %s per request" % "{:,.0f}".format(
                sum(v for f, v in exc.items() if objs.get(f, "").startswith("mod_scalekit")) / reqs))


def perf(a, module_path, idp, sets, work):
    h = Httpd(module_path, idp=idp, locations=bench.SCALEKIT_LOCATIONS, loglevel="warn",
              extra_conf=bench.MPM_CONF + PUB_CONF + ROLE_CONF)
    bench.bench_files(h)
    data = work / "perf.data"
    try:
        h.start()
        name = a.workloads[0] if a.workloads[0] in sets else "warm"
        path = workload_path(name)
        bench.wrk(h, path, sets[name], 2, 2, 64)                       # warm-up
        kids = bench.children_rss(h)[1]
        wrk_cmd = ["wrk", "-t2", "-c64", "-d%ds" % (a.seconds + 2), "-s", str(bench.WRK_LUA),
                   bench.wrk_url(h, path), "--", str(sets[name] or ""), bench.host_header(h)]
        load = subprocess.Popen(wrk_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            time.sleep(1)
            log("perf record on children %s for %d s (%s)" % (kids, a.seconds, name))
            subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", str(a.freq), "--call-graph",
                            "dwarf,8192", "-o", str(data), "-p", ",".join(map(str, kids)), "--",
                            "sleep", str(a.seconds)], capture_output=True, timeout=a.seconds + 120)
        finally:
            try:
                os.killpg(load.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            load.wait()
    finally:
        h.stop()
        if not a.keep:
            h.cleanup()

    def report(*args):
        return subprocess.run(["perf", "report", "-i", str(data), "--stdio", *args],
                              capture_output=True, text=True, timeout=600).stdout

    print("\nperf (%s): share of samples by DSO" % name)
    print(strip(report("--no-children", "--sort", "dso", "-g", "none"), 25))
    print("perf: top symbols (self)")
    print(strip(report("--no-children", "--sort", "dso,sym", "-g", "none"), 40))
    print("perf: inclusive (children) share of the module's functions")
    text = report("--children", "--sort", "sym", "-g", "none")
    keep = [l for l in text.splitlines() if re.search(r"\bsk_|siphash|lookup|cJSON", l)]
    print("\n".join(keep[:30]))
    if a.keep:
        print("perf data kept: %s" % data)


def strip(text, n):
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    return "\n".join(lines[:n])


def main(argv=None):
    ap = argparse.ArgumentParser(description="profile mod_scalekit's request path")
    ap.add_argument("tool", choices=["callgrind", "perf"])
    ap.add_argument("--workloads", default=None,
                    help="comma list of %s (callgrind default: all; perf default: warm)" % WORKLOADS)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=None, help="load time per workload (callgrind 30, perf 10)")
    ap.add_argument("--freq", type=int, default=499, help="perf sampling frequency")
    ap.add_argument("--keep", action="store_true", help="keep the data files and ServerRoots")
    a = ap.parse_args(argv)
    a.workloads = (a.workloads or (WORKLOADS if a.tool == "callgrind" else "warm")).split(",")
    unknown = set(a.workloads) - set(WORKLOADS.split(","))
    if unknown:
        ap.error("--workloads: unknown %s" % ",".join(sorted(unknown)))
    a.seconds = a.seconds or (30 if a.tool == "callgrind" else 10)
    if a.seconds > 300:
        ap.error("--seconds: at most 300")
    need = shutil.which("valgrind" if a.tool == "callgrind" else "perf")
    if not need:
        raise SystemExit("%s is missing (apt-get install %s)" % (a.tool, "valgrind" if a.tool == "callgrind" else "linux-perf"))
    module_path, err = build_module()
    if err:
        raise SystemExit(err)
    work = Path(tempfile.mkdtemp(prefix="skprof-work-"))
    idp = IdP(auto_login=True).start(timeout=60)
    try:
        idp.lifetimes(access=3600)
        sets = make_sessions(module_path, idp, a.users if "users" in a.workloads else 0, work)
        if a.tool == "callgrind":
            callgrind(a, module_path, idp, sets, work)
        else:
            perf(a, module_path, idp, sets, work)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.kill_children()
        idp.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
