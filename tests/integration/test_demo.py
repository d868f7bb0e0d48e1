# SPDX-License-Identifier: Apache-2.0
"""scripts/demo as a person runs it: one command, then a browser's sign-in (here --https)."""
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

from httpd import REPO, default_mpm, free_port


@pytest.fixture
def demo_https():
    """scripts/demo --https on a free port in a fresh directory; stopped with Ctrl-C (SIGINT)."""
    if default_mpm() != "event":
        pytest.skip("the demo pins its own MPM: run once, in the event pass")
    d = tempfile.mkdtemp(prefix="skdemo-")
    os.chmod(d, 0o755)
    port = free_port()
    env = dict(os.environ, PORT=str(port), DEMO_DIR=os.path.join(d, "demo"))
    for k in ("SCALEKIT_ENVIRONMENT_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET",
              "SCALEKIT_REDIRECT_URI"):
        env.pop(k, None)
    p = subprocess.Popen([str(REPO / "scripts" / "demo"), "--https"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    out = b""
    deadline = time.monotonic() + 240           # a first run builds the module
    try:
        while b"\nLogs: " not in out:             # its last line, once apache2 answers
            left = deadline - time.monotonic()
            assert left > 0 and p.poll() is None, "demo did not start:\n" + out.decode()[-3000:]
            if select.select([p.stdout], [], [], min(left, 1))[0]:
                out += os.read(p.stdout.fileno(), 4096)
        yield port, env["DEMO_DIR"], out.decode()
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        p.stdout.close()
        shutil.rmtree(d, ignore_errors=True)


def test_demo_https_signs_in(demo_https):
    """`scripts/demo --https`: https on a CA made for the run (the only CA trusted here), the
    callback registered as https, Secure cookies, and a sign-in through the local IdP that lands on
    the protected PHP page."""
    port, demo_dir, said = demo_https
    site = "https://127.0.0.1:%d" % port
    assert "Open %s/" % site in said and "tls/ca.pem" in said, said
    s = requests.Session()
    s.trust_env = False
    s.verify = os.path.join(demo_dir, "tls", "ca.pem")
    r = s.get(site + "/dashboard/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["Location"]).query))
    assert q["redirect_uri"] == site + "/api/auth/callback"
    state = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("sk-state-")]
    assert state and "Secure" in state[0], state
    # The demo's IdP shows a sign-in page; let it sign the default user in at once instead.
    idp_url = json.load(open(os.path.join(demo_dir, "idp.json")))["http"]
    assert s.post(idp_url + "/_control/auto_login", json={"on": True}).status_code == 200
    r = s.get(r.headers["Location"])
    assert r.status_code == 200 and r.url == site + "/dashboard/", (r.url, r.text[:500])
    assert "SCALEKIT_EMAIL" in r.text, r.text[:1000]
