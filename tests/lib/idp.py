# SPDX-License-Identifier: Apache-2.0
"""Start, stop and steer the local Scalekit-compatible IdP (tests/idp/skidp.py) from the tests.

    with IdP(auto_login=True) as idp:          # fresh state dir, http + https listeners
        idp.url, idp.https_url, idp.ca         # "http://127.0.0.1:P", "https://127.0.0.1:Q", ca.pem
        idp.set_user(email="grace@example.com", roles=["viewer"])
        idp.fault("500", paths=["/oauth/token"], count=1)
        idp.rotate(keep_old=False)
        idp.set_shape(id="id-token")           # issue tokens shaped as Scalekit's docs print them
        idp.log()                              # every non-control request, in arrival order

The IdP's stderr goes to STATE_DIR/skidp.stderr.log (a pipe nobody reads would fill up and stall
the server under load); start() failures quote its tail.

Making RSA keys is most of an IdP's start-up time (three 2048-bit keys: signing key, CA, server
certificate; seconds on a busy machine). So by default an IdP started on an empty state dir gets a
copy of the key material of the first IdP this test process started. Each IdP still has its own
state, ports and issuer; pass reuse_keys=False for keys and a CA nobody else has.
"""
import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

PYTHON = "/usr/bin/python3"
SKIDP = Path(__file__).resolve().parents[1] / "idp" / "skidp.py"
KEY_FILES = ("keys.json", "ca.pem", "server.pem", "server.key")
_key_template = None        # a directory holding KEY_FILES, made by the first start


def _seed_keys(state_dir):
    """Copy the template key material into an empty state dir (modes kept: keys stay 0600)."""
    if _key_template is None or os.path.exists(os.path.join(state_dir, "keys.json")):
        return
    for name in KEY_FILES:
        src = os.path.join(_key_template, name)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(state_dir, name))


def _remember_keys(state_dir):
    global _key_template
    if _key_template is not None or not os.path.exists(os.path.join(state_dir, "ca.pem")):
        return
    template = tempfile.mkdtemp(prefix="skidp-keys-")
    for name in KEY_FILES:
        shutil.copy2(os.path.join(state_dir, name), os.path.join(template, name))
    atexit.register(shutil.rmtree, template, True)
    _key_template = template


class IdPError(RuntimeError):
    pass


class IdP:
    def __init__(self, state_dir=None, client_id="skc_demo", client_secret="demo-secret",
                 auto_login=True, https=True, port=0, https_port=0, quiet=True,
                 reuse_keys=True):
        self.own_state_dir = state_dir is None
        self.state_dir = state_dir
        self.client_id = client_id
        self.client_secret = client_secret
        self.auto_login = auto_login
        self.https = https
        self.port = port
        self.https_port = https_port if https else -1
        self.quiet = quiet
        self.reuse_keys = reuse_keys
        self.url = self.https_url = self.ca = self.pid = None
        self.proc = None
        self._http = requests.Session()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout=10):
        if self.proc is not None:
            return self
        if self.state_dir is None:
            self.state_dir = tempfile.mkdtemp(prefix="skidp-")
        os.makedirs(self.state_dir, exist_ok=True)
        os.chmod(self.state_dir, 0o755)
        if self.reuse_keys:
            _seed_keys(self.state_dir)
        self.stderr_path = os.path.join(self.state_dir, "skidp.stderr.log")
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        try:
            ready = json.loads(self._ready_line(timeout))
        except (IdPError, ValueError) as exc:
            self._kill()
            raise IdPError("skidp did not start: %s\n--- stderr tail ---\n%s"
                           % (exc, self.stderr_tail())) from None
        self.url, self.https_url, self.ca, self.pid = (ready["http"], ready["https"],
                                                       ready["ca"], ready["pid"])
        # Pin the ports so restart() comes back on the same addresses.
        self.port = int(self.url.rsplit(":", 1)[1])
        if self.https_url:
            self.https_port = int(self.https_url.rsplit(":", 1)[1])
        _remember_keys(self.state_dir)
        return self

    def _command(self):
        cmd = [PYTHON, str(SKIDP), "--host", "127.0.0.1", "--port", str(self.port),
               "--https-port", str(self.https_port), "--state-dir", self.state_dir,
               "--client-id", self.client_id, "--client-secret", self.client_secret]
        if self.auto_login:
            cmd.append("--auto-login")
        if self.quiet:
            cmd.append("--quiet")
        return cmd

    def _ready_line(self, timeout):
        """The first stdout line, without blocking past the deadline or on a dead child."""
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IdPError("no ready line within %ss" % timeout)
            readable, _, _ = select.select([fd], [], [], min(left, 0.2))
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise IdPError("exited with status %s" % self.proc.wait())
                buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def stderr_tail(self, size=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode(errors="replace")
        except (OSError, AttributeError):
            return ""

    def stop(self):
        """SIGTERM, then SIGKILL if it lingers. Idempotent. Removes a state dir we made."""
        self._kill()
        if self.own_state_dir and self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def _kill(self, grace=5):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        self._http.close()
        self._http = requests.Session()

    def restart(self, timeout=10):
        """Stop and start again on the same ports and state dir (keys and CA survive)."""
        self._kill()
        return self.start(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # --- controls ------------------------------------------------------------------------------

    def control(self, path, payload=None, method="POST"):
        """Call /_control/PATH on the http listener and return the decoded JSON."""
        url = "%s/_control/%s" % (self.url, path.lstrip("/"))
        r = self._http.request(method, url, json=payload if method == "POST" else None,
                               timeout=30)
        if r.status_code != 200:
            raise IdPError("control %s -> %s %s" % (path, r.status_code, r.text[:500]))
        return r.json()

    def log(self):
        return self.control("log", method="GET")

    def clear_log(self):
        self.control("log/clear")

    def rotate(self, keep_old=True):
        return self.control("rotate", {"keep_old": keep_old})["kid"]

    def keys(self):
        return self.control("keys", method="GET")

    def set_user(self, **claims):
        return self.control("user", claims)

    def add_client(self, client_id, client_secret, **extra):
        """extra: redirect_uris, audience (a list: its machine tokens then carry aud), oid,
        custom_claims ([{"key": K, "value": V}] or a dict, added to its machine tokens)."""
        return self.control("client", dict(extra, client_id=client_id,
                                           client_secret=client_secret))

    def set_shape(self, access=None, id=None, machine=None, **clear):
        """Issue tokens of the documented shapes tests/fixtures/scalekit-docs/NAME.json
        (e.g. set_shape(id="id-token", access="access-token")); set_shape(clear=True) goes back
        to the IdP's own. Unnamed kinds are left as they were."""
        payload = {k: v for k, v in (("access", access), ("id", id), ("machine", machine)) if v}
        if clear.pop("clear", False):
            payload = dict({"access": None, "id": None, "machine": None}, **payload)
        if clear:
            raise TypeError("unknown arguments: %s" % ", ".join(clear))
        return self.control("shape", payload)

    def client_credentials(self, client_id, client_secret, scope=None):
        """A machine token from the token endpoint, as an API client gets it."""
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": client_secret}
        if scope:
            form["scope"] = scope
        r = self._http.post(self.url + "/oauth/token", data=form, timeout=30)
        if r.status_code != 200:
            raise IdPError("client_credentials -> %s %s" % (r.status_code, r.text[:500]))
        return r.json()["access_token"]

    def set_auto_login(self, on=True):
        return self.control("auto_login", {"on": on})

    def fault(self, mode="none", delay=0, paths=None, count=None):
        payload = {"mode": mode, "delay": delay}
        if paths is not None:
            payload["paths"] = list(paths)
        if count is not None:
            payload["count"] = count
        return self.control("fault", payload)

    def lifetimes(self, access=None, id=None, refresh=None, **others):
        payload = dict(others, access=access, id=id, refresh=refresh)
        return self.control("lifetimes", {k: v for k, v in payload.items() if v is not None})

    def mint(self, claims, header=None, kid=None, sign=None, base=None, shape=None, nulls=None):
        """A signed token: claims over a base (access, id, machine: the test user's usual
        token) or a documented shape as printed (shape="m2m-access-token", fresh times). A None
        in claims removes that claim; nulls names claims to set to JSON null."""
        payload = {"claims": claims}
        for name, value in (("header", header), ("kid", kid), ("sign", sign), ("base", base),
                            ("shape", shape), ("nulls", nulls)):
            if value is not None:
                payload[name] = value
        return self.control("mint", payload)["token"]

    def mint_sessions(self, count, start=0, prefix="usr_mint"):
        """[access, id] token pairs of count distinct users, as sign-ins would give them."""
        return self.control("mint_sessions", {"count": count, "start": start,
                                              "prefix": prefix})["sessions"]

    def idp_initiated(self, **claims):
        return self.control("idp_initiated", claims)["token"]

    def stats(self):
        return self.control("stats", method="GET")

    def reset(self):
        """Back to the start-up user, lifetimes, clients, auto-login; no faults, log, sessions."""
        return self.control("reset")
