# SPDX-License-Identifier: Apache-2.0
"""The Debian package end to end, on the machine itself (root):

1. scripts/package builds libapache2-mod-scalekit from a clean export of the tree;
2. dpkg -i installs it into the system; its postinst (dh_apache2's default for a module) enables
   scalekit, and scalekit.load's `# Depends: socache_shmcb` brings socache_shmcb along;
3. a sign-in goes through the system's /usr/sbin/apache2 and the system's configuration tree,
   copied to a temporary directory (Listen 127.0.0.1:PORT, one site wired to the local IdP), so the
   machine's own /etc/apache2 only ever sees what the package itself does to it;
4. everything is undone: apache2 stopped, `a2dismod -f scalekit`, `dpkg -P`, mods-enabled and
   apache2's module state put back as they were, temporary directories removed.

The package must not be installed beforehand (its removal would then change the machine).
Deselect with -m 'not package'.
"""
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from httpd import WHOAMI_CGI, free_port

pytestmark = pytest.mark.package

PKG = "libapache2-mod-scalekit"
REPO = Path(__file__).resolve().parents[2]
APACHE = "/usr/sbin/apache2"
ETC = Path("/etc/apache2")
STATE = Path("/var/lib/apache2")
POLICY = Path("/usr/sbin/policy-rc.d")
# What installing the package may enable (scalekit and its Depends), in mods-enabled and STATE.
MODS = ("scalekit", "socache_shmcb")
# The package's files: a copy put there by hand (make install) is kept aside and put back.
PKG_FILES = (Path("/usr/lib/apache2/modules/mod_scalekit.so"),
             ETC / "mods-available" / "scalekit.load", ETC / "mods-available" / "scalekit.conf")
LOCK = os.path.join("/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir(),
                    "mod_scalekit-test-package.lock")


def run(cmd, timeout=120, check=True, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        pytest.fail("%s: exit %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(map(str, cmd)), p.returncode, p.stdout[-4000:], p.stderr[-4000:]), pytrace=False)
    return p


def dpkg(*args):
    """dpkg ARGS, waiting up to two minutes for its lock (an apt-get elsewhere on the machine)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + 120
    while True:
        p = run(["dpkg", *args], check=False, env=env, timeout=300)
        if p.returncode == 0:
            return p
        if "lock" not in p.stderr or time.monotonic() > deadline:
            raise RuntimeError("dpkg %s: exit %d\n%s%s" % (" ".join(map(str, args)), p.returncode,
                                                            p.stdout[-3000:], p.stderr[-3000:]))
        time.sleep(2)


def pkg_status():
    """dpkg's status of the package: "installed", "config-files", ...; "" when dpkg never knew it."""
    p = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PKG], check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def module_state():
    """What a2enmod/a2dismod and the maintainer scripts change for MODS: mods-enabled entries and the
    marker files under /var/lib/apache2/module (with the marker directories that exist)."""
    out = {}
    for m in MODS:
        for ext in (".load", ".conf"):
            p = ETC / "mods-enabled" / (m + ext)
            if p.is_symlink():
                out[p] = ("link", os.readlink(p))
            elif p.exists():
                out[p] = ("file", p.read_bytes())
    markers = STATE / "module"
    if markers.is_dir():
        for d in markers.iterdir():
            if d.is_dir():
                out[d] = ("dir", None)
                for m in MODS:
                    if (d / m).is_file():
                        out[d / m] = ("file", (d / m).read_bytes())
    return out


def restore_module_state(before):
    now = module_state()
    for p in sorted(now, key=lambda p: -len(p.parts)):          # deepest first
        if now[p] != before.get(p):
            if now[p][0] == "dir":
                if not any(p.iterdir()):
                    p.rmdir()
            else:
                p.unlink()
    for p in sorted(before, key=lambda p: len(p.parts)):        # parents first
        kind, data = before[p]
        if p.is_symlink() or p.exists():
            continue
        if kind == "dir":
            p.mkdir()
        elif kind == "link":
            os.symlink(data, p)
        else:
            p.write_bytes(data)


def confdir_pids(confdir):
    """Processes whose command line names the temporary config dir (apache2 and its children)."""
    needle = str(confdir).encode()
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if needle in f.read():
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def wait_for_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class MachineLock:
    """One package test at a time on this machine (they install and purge the same package)."""

    def __enter__(self):
        self.f = open(LOCK, "w")
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("another package test has held %s for 10 minutes" % LOCK, pytrace=False)
                time.sleep(1)

    def __exit__(self, *exc):
        self.f.close()


SITE = """# written by tests/integration/test_package.py
<VirtualHost 127.0.0.1:{port}>
    ServerName localhost
    DocumentRoot {root}/www
    ErrorLog ${{APACHE_LOG_DIR}}/error.log
    CustomLog ${{APACHE_LOG_DIR}}/access.log combined
    LogLevel warn scalekit:debug

    ScalekitEnvironmentURL {idp_url}
    ScalekitClientID {client_id}
    ScalekitClientSecret {client_secret}
    ScalekitRedirectURI {url}/api/auth/callback

    <Directory {root}/www>
        Require all granted
    </Directory>
    ScriptAlias /app/ {root}/app/
    <Directory {root}/app>
        Require all granted
    </Directory>

    <Location /api/auth>
        SetHandler scalekit
    </Location>
    <Location /app>
        AuthType Scalekit
        Require valid-user
    </Location>
    <Location /private>
        AuthType Scalekit
        Require valid-user
    </Location>
</VirtualHost>
"""


def prepare_confdir(root, port, idp):
    """A copy of the system's /etc/apache2 in root/apache2 that serves one Scalekit site on
    127.0.0.1:port, with Debian's envvars pointing the run, lock and log dirs into root.
    Returns (confdir, environment for apache2)."""
    confdir = root / "apache2"
    shutil.copytree(ETC, confdir, symlinks=True)
    for d in ("run", "lock", "log", "www/private", "app", "state"):
        (root / d).mkdir(parents=True)
    (root / "www" / "index.html").write_text("<h1>public</h1>\n")
    (root / "www" / "private" / "index.html").write_text("<h1>private page</h1>\n")
    (root / "app" / "whoami").write_text(WHOAMI_CGI)
    os.chmod(root / "app" / "whoami", 0o755)

    enabled = confdir / "mods-enabled"
    # a2enmod on the copy, from scratch: scalekit.load's Depends line must bring socache_shmcb.
    for m in MODS:
        for ext in (".load", ".conf"):
            if (enabled / (m + ext)).is_symlink() or (enabled / (m + ext)).exists():
                (enabled / (m + ext)).unlink()
    p = run(["a2enmod", "scalekit"], env=dict(os.environ, APACHE_CONFDIR=str(confdir),
                                              APACHE_STATE_DIRECTORY=str(root / "state")))
    assert "socache_shmcb" in p.stdout, p.stdout
    for name in ("scalekit.load", "scalekit.conf", "socache_shmcb.load"):
        assert (enabled / name).is_symlink() and (enabled / name).exists(), (name, p.stdout)

    # CGI for the whoami script: mod_cgi under prefork, mod_cgid under a threaded MPM (what
    # `a2enmod cgi` picks; done by hand, as a2enmod would ask the system's apache2ctl).
    cgi = ["cgi"] if (enabled / "mpm_prefork.load").exists() else ["cgid"]
    for m in cgi:
        for ext in (".load", ".conf"):
            if (confdir / "mods-available" / (m + ext)).exists() and not (enabled / (m + ext)).exists():
                os.symlink("../mods-available/" + m + ext, enabled / (m + ext))

    (confdir / "ports.conf").write_text("Listen 127.0.0.1:%d\n" % port)
    for site in (confdir / "sites-enabled").iterdir():
        site.unlink()
    (confdir / "sites-available" / "scalekit-test.conf").write_text(SITE.format(
        port=port, root=root, url="http://localhost:%d" % port, idp_url=idp.url,
        client_id=idp.client_id, client_secret=idp.client_secret))
    os.symlink("../sites-available/scalekit-test.conf", confdir / "sites-enabled" / "scalekit-test.conf")

    # Debian's envvars, with the run, lock and log directories moved into root.
    with open(confdir / "envvars", "a") as f:
        f.write("\n# test_package.py: everything apache2 writes stays in its temporary directory\n"
                "export APACHE_RUN_DIR=%s/run\nexport APACHE_PID_FILE=%s/run/apache2.pid\n"
                "export APACHE_LOCK_DIR=%s/lock\nexport APACHE_LOG_DIR=%s/log\n" % ((root,) * 4))
    base = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "APACHE_CONFDIR": str(confdir)}
    out = run(["sh", "-c", '. "$APACHE_CONFDIR/envvars" && env -0'], env=base).stdout
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    assert env["APACHE_RUN_USER"] == "www-data" and env["APACHE_RUN_GROUP"] == "www-data", env
    os.chmod(root, 0o755)     # children run as www-data: docroot and CGI must be readable
    return confdir, env


def test_deb_installs_and_signs_in_through_system_apache2(idp, browser_session):
    if os.geteuid() != 0:
        pytest.fail("the package test installs into the system: run it as root", pytrace=False)
    for tool in ("dpkg", "dpkg-deb", "a2enmod", "a2dismod", APACHE):
        if not shutil.which(tool):
            pytest.fail("%s not found" % tool, pytrace=False)

    with MachineLock():
        status = pkg_status()
        if status not in ("", "not-installed"):
            pytest.fail("%s is already on this machine (%s): the test would replace and then purge "
                        "it. Remove it first: dpkg -P %s" % (PKG, status, PKG), pytrace=False)

        # ---- build (scripts/package installs dpkg-dev, debhelper, fakeroot when missing) ----
        built = run([REPO / "scripts" / "package"], timeout=900)
        deb = Path(built.stdout.strip().splitlines()[-1])
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        assert deb == REPO / "build" / "deb" / ("%s_0.1.0_%s.deb" % (PKG, arch)) and deb.is_file()
        fields = dict(line.split(": ", 1) for line in run(
            ["dpkg-deb", "-f", deb, "Package", "Version", "Depends"]).stdout.splitlines())
        assert fields["Package"] == PKG and fields["Version"] == "0.1.0"
        assert "apache2-api-20120211" in fields["Depends"] and "libcurl4" in fields["Depends"]
        listing = run(["dpkg-deb", "-c", deb]).stdout
        for path in ("./usr/lib/apache2/modules/mod_scalekit.so", "./etc/apache2/mods-available/scalekit.load",
                     "./etc/apache2/mods-available/scalekit.conf",
                     "./usr/share/doc/%s/directives.md.gz" % PKG, "./usr/share/doc/%s/copyright" % PKG):
            assert path in listing, listing

        before = module_state()
        shmcb_was_enabled = (ETC / "mods-enabled" / "socache_shmcb.load").exists()
        aside = Path(tempfile.mkdtemp(prefix="sk-pkg-aside-"))
        moved = []
        added_policy = False
        root = Path(tempfile.mkdtemp(prefix="sk-pkg-apache2-"))
        proc = None
        confdir = None
        try:
            for f in PKG_FILES:
                if f.is_symlink() or f.exists():
                    shutil.move(str(f), str(aside / f.name))
                    moved.append(f)
            # Maintainer scripts restart a running system apache2 after (dis)enabling a module;
            # policy-rc.d answering 101 keeps invoke-rc.d from starting or restarting it.
            if not POLICY.exists():
                POLICY.write_text("#!/bin/sh\nexit 101\n")
                os.chmod(POLICY, 0o755)
                added_policy = True

            # ---- install: dh_apache2's postinst enables the module (a2enmod -m scalekit) ----
            dpkg("-i", deb)
            assert pkg_status() == "installed"
            for f in PKG_FILES:
                assert f.is_file(), f
            link = ETC / "mods-enabled" / "scalekit.load"
            assert link.is_symlink() and os.readlink(link) == "../mods-available/scalekit.load"
            assert (ETC / "mods-enabled" / "socache_shmcb.load").exists(), \
                "scalekit.load's Depends did not enable socache_shmcb (was enabled before: %s)" % shmcb_was_enabled
            p = run(["a2enmod", "scalekit"])              # the admin's command: already done, rc 0
            assert "already enabled" in p.stdout, p.stdout

            # ---- the system apache2 on a copy of the system's config tree ----
            port = free_port()
            url = "http://localhost:%d" % port
            confdir, env = prepare_confdir(root, port, idp)
            p = run([APACHE, "-d", confdir, "-t", "-D", "DUMP_MODULES"], env=env, check=False)
            assert p.returncode == 0, p.stdout + p.stderr
            assert "scalekit_module (shared)" in p.stdout and "socache_shmcb_module (shared)" in p.stdout, p.stdout
            with open(root / "log" / "stderr", "ab") as err:
                # Its own session: apache2 signals its process group when it stops.
                proc = subprocess.Popen([APACHE, "-d", str(confdir), "-DFOREGROUND"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            if not wait_for_port(port, proc):
                pytest.fail("system apache2 did not start (exit %s)\n--- stderr:\n%s\n--- error.log:\n%s" % (
                    proc.poll(), (root / "log" / "stderr").read_text(errors="replace")[-3000:],
                    (root / "log" / "error.log").read_text(errors="replace")[-3000:]
                    if (root / "log" / "error.log").exists() else ""), pytrace=False)

            # Signed out: the protected page sends the browser to sign in.
            s = browser_session()
            r = s.get(url + "/private/", allow_redirects=False)
            assert r.status_code == 302, (r.status_code, r.text[:300])
            assert "/api/auth/login" in r.headers["Location"] or r.headers["Location"].startswith(idp.url)
            # Sign in through the IdP (auto-login) and land back on the CGI with the identity.
            r = s.get(url + "/app/whoami")
            assert r.status_code == 200 and r.url == url + "/app/whoami", (r.status_code, r.url, r.text[:300])
            seen = r.json()
            assert seen["REMOTE_USER"] == "usr_demo001"
            assert seen["AUTH_TYPE"] == "Scalekit"
            assert seen["SCALEKIT_EMAIL"] == "ada@example.com"
            r = s.get(url + "/private/", allow_redirects=False)
            assert r.status_code == 200 and "private page" in r.text
            assert any(e["path"] == "/oauth/token" for e in idp.log())
            # Debian's combined log format names the user (%u).
            deadline = time.monotonic() + 5
            # httpd writes a request's line after answering it: wait for the last one.
            while '"GET /private/ HTTP/1.1" 200' not in (root / "log" / "access.log").read_text() \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert '"GET /private/ HTTP/1.1" 200' in (root / "log" / "access.log").read_text()
            assert " usr_demo001 " in (root / "log" / "access.log").read_text()
        finally:
            errors = []

            def step(what, fn):
                try:
                    fn()
                except Exception as e:        # every step runs; their failures are reported together
                    errors.append("%s: %s" % (what, e))

            def stop_apache():
                if proc is not None:
                    if proc.poll() is None:
                        proc.terminate()      # SIGTERM: the foreground parent stops its children
                        try:
                            proc.wait(15)
                        except subprocess.TimeoutExpired:
                            pass
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    proc.wait()
                if confdir is not None:
                    for pid in confdir_pids(confdir):
                        os.kill(pid, signal.SIGKILL)

            def disable():
                if (ETC / "mods-available" / "scalekit.load").exists():
                    run(["a2dismod", "-f", "-q", "scalekit"])

            def purge():
                if pkg_status() not in ("", "not-installed"):
                    dpkg("-P", PKG)

            def put_back():
                for f in moved:
                    if f.is_symlink() or f.exists():
                        f.unlink()
                    shutil.move(str(aside / f.name), str(f))

            step("stopping apache2", stop_apache)
            step("a2dismod -f scalekit", disable)
            step("dpkg -P %s" % PKG, purge)
            step("putting back the files kept aside", put_back)
            step("restoring mods-enabled and %s" % STATE, lambda: restore_module_state(before))
            if added_policy:
                step("removing %s" % POLICY, POLICY.unlink)
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(aside, ignore_errors=True)
            if errors:
                pytest.fail("clean-up failed:\n" + "\n".join(errors), pytrace=False)

        # The machine is as it was.
        assert pkg_status() in ("", "not-installed")
        assert module_state() == before
        for f in PKG_FILES:
            assert (f.is_symlink() or f.exists()) == (f in moved), f
