# SPDX-License-Identifier: Apache-2.0
"""The soak's short version: tests/soak/soak.py for 45 s (64 connections, mpm_event, every kind of
request: valid sessions of many users, refreshes with late tabs, invalid tokens, sign-ins, sign-outs).
It fails on any 5xx, connection error or unexpected answer (a signed-in user sent to sign in is
one), and when the children's memory or descriptors grow 5 % or more after the warm-up.

Two settings differ from the 10-minute run (README, "Soak"): the warm-up is 25 s of the 45, and
ScalekitCacheEntries is 200. The validated-token cache keeps every token it has seen until it holds
ScalekitCacheEntries of them (16384 per validator by default, about 2 KiB each): with the default
it is still filling after 45 s and its growth would hide any other. Full by the end of the
warm-up, it lets the short run see everything else grow."""
import json
import subprocess

from httpd import is_asan_build


def test_soak_short(module_path, repo_root, tmp_path):
    report = tmp_path / "soak.json"
    cmd = ["/usr/bin/python3", str(repo_root / "tests" / "soak" / "soak.py"), "--minutes", "0.75",
           "--warmup", "25", "--cache-entries", "200", "--module", str(module_path),
           "--json", str(report)]
    if is_asan_build(module_path):
        cmd += ["--max-growth", "100000"]     # ASan's quarantine holds freed memory: RSS says nothing
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=420)
    print(p.stdout[-6000:])
    assert p.returncode == 0, "soak failed:\n" + p.stdout[-4000:] + p.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["ok"] and r["failure_count"] == 0
    assert r["answers"] > 1000, r["answers"]
    assert not [s for s in r["statuses"] if int(s) >= 500], r["statuses"]
    done = {a.split()[0] for a in r["by_action"]}
    assert {"valid", "cgi", "session", "refresh", "invalid", "signin", "signout"} <= done, done
