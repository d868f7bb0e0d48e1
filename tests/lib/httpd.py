# SPDX-License-Identifier: Apache-2.0
"""A real Apache httpd for the tests: a throw-away ServerRoot, a generated httpd.conf, loopback ports.

    h = Httpd(module_path, idp=idp)          # or load_scalekit=False for a plain server
    h.start()                                # -DFOREGROUND child; raises HttpdError with the logs
    requests.get(h.url + "/dashboard/")      # h.url == "http://localhost:PORT" (see public_host)
    h.error_log(); h.access_log()            # text; dicts: status, method, uri, user, us, bytes
    h.stop()                                 # always, also on failure (the fixtures do it)

tls=True serves https (mod_ssl, and HTTP/2 through mod_http2 unless h2=False) on a certificate for
localhost and 127.0.0.1 from a throw-away CA made as the local IdP makes its own (h.ca, the CA's PEM;
h.url is then https://localhost:PORT). mod_http2 stays inactive under prefork (HTTP/1.1 only).

Text given as scalekit_conf, locations or extra_conf may use @ROOT@, @DOCROOT@, @PORT@, @URL@ and
@PORT1@.. @PORTn@ (extra_ports=n: more Listen ports, for tests with several virtual hosts).

Cookies ignore ports, so two servers on 127.0.0.1 share a browser's cookies and count as one site.
The local IdP's issuer is its bound address (http://127.0.0.1:PORT), so it must be reached as
127.0.0.1; httpd listens on 127.0.0.1 too but is reached as public_host="localhost" (url, redirect
URI, Host header). The two are then separate sites with separate cookie jars, as an app and Scalekit
are in production: SameSite and cookie-scope mistakes show up. public_host="127.0.0.1" gives the
shared-jar case when a test wants it.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

APACHE = "/usr/sbin/apache2"
MODDIR = Path("/usr/lib/apache2/modules")
REPO = Path(__file__).resolve().parents[2]

# Tab-separated so tests and benchmarks can count statuses: status, request line, user, µs, bytes.
# %r, not %U: mod_dir's fast internal redirect rewrites r->uri ("/" would log as "/index.html").
LOG_FIELDS = ("status", "request", "user", "us", "bytes")
LOG_FORMAT = r'"%>s\t%r\t%u\t%D\t%B"'

WHOAMI_CGI = r'''#!/usr/bin/python3
# What a CGI application sees behind mod_scalekit: JSON, or KEY=VALUE lines with ?text.
import json, os
seen = {k: os.environ.get(k) for k in ("REMOTE_USER", "AUTH_TYPE", "HTTP_COOKIE")}
seen.update({k: v for k, v in sorted(os.environ.items()) if k.startswith("SCALEKIT_")})
if os.environ.get("QUERY_STRING") == "text":
    print("Content-Type: text/plain\n")
    print("\n".join("%s=%s" % (k, "" if v is None else v) for k, v in seen.items()))
else:
    print("Content-Type: application/json\n")
    print(json.dumps(seen))
'''

WHOAMI_PHP = r'''<?php
// What a PHP application sees behind mod_scalekit.
header("Content-Type: application/json");
echo json_encode([
    "REMOTE_USER" => $_SERVER["REMOTE_USER"] ?? null,
    "AUTH_TYPE" => $_SERVER["AUTH_TYPE"] ?? null,
    "getenv_SCALEKIT_EMAIL" => getenv("SCALEKIT_EMAIL") ?: null,
    "SCALEKIT_EMAIL" => $_SERVER["SCALEKIT_EMAIL"] ?? null,
    "SCALEKIT_SUB" => $_SERVER["SCALEKIT_SUB"] ?? null,
    "COOKIE_NAMES" => array_keys($_COOKIE),
]), "\n";
'''

DEFAULT_LOCATIONS = """
<Location /api/auth>
    SetHandler scalekit
</Location>
<Location /dashboard>
    AuthType Scalekit
    Require valid-user
</Location>
<Location /cgi-bin>
    AuthType Scalekit
    Require valid-user
</Location>
"""


SANITIZER_REPORT = re.compile(r"ERROR: \w+Sanitizer|: runtime error: |SUMMARY: \w+Sanitizer")


class HttpdError(RuntimeError):
    pass


_tls = {}


def tls_material():
    """(ca.pem, server.pem, server.key) for localhost and 127.0.0.1, made once per process by the
    local IdP's own code (tests/idp/skidp.py ensure_tls_files): a CA nobody else has."""
    if "files" not in _tls:
        import atexit
        import importlib.util
        spec = importlib.util.spec_from_file_location("skidp_tls", REPO / "tests" / "idp" / "skidp.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        d = tempfile.mkdtemp(prefix="skhttpd-tls-")
        atexit.register(shutil.rmtree, d, True)
        _tls["files"] = mod.ensure_tls_files(d)
    return _tls["files"]


def spki_hash(cert_pem):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes to trust that one certificate."""
    import base64
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def free_port():
    """A free 127.0.0.1 port (the kernel picks; a tiny race with other processes remains)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MPMS = ("event", "worker", "prefork")


def default_mpm():
    """The MPM of servers that name none: $SK_TEST_MPM (event, worker or prefork), else event."""
    mpm = os.environ.get("SK_TEST_MPM") or "event"
    if mpm not in MPMS:
        raise ValueError("SK_TEST_MPM=%s: expected one of %s" % (mpm, ", ".join(MPMS)))
    return mpm


def default_module_path():
    return Path(os.environ.get("MOD_SCALEKIT_SO") or REPO / ".libs" / "mod_scalekit.so")


_build = {}


def build_module():
    """Build .libs/mod_scalekit.so once per process (make decides whether it is stale).
    Returns (path, None) or (None, error text). MOD_SCALEKIT_SO names a prebuilt one (e.g. ASan)."""
    if "result" not in _build:
        path = default_module_path()
        if os.environ.get("MOD_SCALEKIT_SO"):
            _build["result"] = (path, None) if path.exists() else (None, "MOD_SCALEKIT_SO=%s: no such file" % path)
        else:
            # flock: several test runs in one tree must not run libtool over each other.
            (REPO / "build").mkdir(exist_ok=True)
            p = subprocess.run(["flock", str(REPO / "build" / ".make.lock"), "make", "-f", "Makefile.apxs"],
                               cwd=REPO, capture_output=True, text=True)
            ok = p.returncode == 0 and path.exists()
            _build["result"] = (path, None) if ok else (None, (p.stdout + p.stderr)[-4000:])
    return _build["result"]


def is_asan_build(path):
    """An ASan-built module names libasan among its needed libraries (cheaper than running ldd)."""
    try:
        return b"libasan.so" in Path(path).read_bytes()
    except OSError:
        return False


def sanitizer_preload():
    """An ASan/UBSan-built module in an uninstrumented apache2: the runtimes must be loaded first."""
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        out = subprocess.run(["gcc", "-print-file-name=" + name], capture_output=True, text=True).stdout.strip()
        if out and os.path.isabs(out):
            libs.append(os.path.realpath(out))
    return " ".join(libs)


class Httpd:
    """One apache2. Settings (all keyword, all optional):
    module_path   the module (default $MOD_SCALEKIT_SO or .libs/mod_scalekit.so); load_scalekit=False: none
    idp, idp_https  an IdP (tests/lib/idp.py) to build the default Scalekit* directives from (http or https URL)
    scalekit_conf the Scalekit* directives instead of those; locations: the <Location>s instead of
                  DEFAULT_LOCATIONS; extra_conf: more server-level config (all three take @PLACEHOLDERS@)
    mpm           event | worker | prefork (default $SK_TEST_MPM, else event); php=True forces prefork and
                  loads mod_php; proxy=True mod_proxy_http; extra_modules: more module names (e.g.
                  "proxy_wstunnel", "remoteip")
    tls, h2       https on the harness's throw-away CA (see above); h2 defaults to tls
    loglevel      default "warn scalekit:debug"; env: extra environment for apache2 (SCALEKIT_* is cleared)
    public_host   the host name in url and the redirect URI (default localhost, see above)
    """

    def __init__(self, module_path=None, *, idp=None, idp_https=False, load_scalekit=True,
                 scalekit_conf=None, locations=None, extra_conf="", mpm=None, php=False,
                 proxy=False, loglevel=None, extra_ports=0, env=None,
                 public_host="localhost", timeout=10, tls=False, h2=None, extra_modules=()):
        self.module_path = Path(module_path) if module_path else default_module_path()
        self.idp, self.idp_https = idp, idp_https
        self.load_scalekit = load_scalekit
        self.scalekit_conf, self.locations, self.extra_conf = scalekit_conf, locations, extra_conf
        self.php = php
        self.mpm = "prefork" if php else (mpm or default_mpm())   # Debian's mod_php only runs under prefork
        # "scalekit:debug" is a syntax error when the module is not loaded
        self.loglevel = loglevel or ("warn scalekit:debug" if load_scalekit else "warn")
        self.proxy, self.env, self.timeout = proxy, dict(env or {}), timeout
        # Only a server that loads the sanitized module gets the sanitizer runtimes preloaded.
        self.asan = load_scalekit and (os.environ.get("MOD_SCALEKIT_ASAN") == "1" or is_asan_build(self.module_path))

        self.root = Path(tempfile.mkdtemp(prefix="skhttpd-"))
        os.chmod(self.root, 0o755)   # children run as www-data: they must read docroot, CGI, CA
        self.port = free_port()
        self.ports = [self.port] + [free_port() for _ in range(extra_ports)]
        self.public_host = public_host
        self.tls, self.h2 = tls, tls if h2 is None else h2
        self.extra_modules = tuple(extra_modules)
        self.scheme = "https" if tls else "http"
        self.url = "%s://%s:%d" % (self.scheme, public_host, self.port)
        self.ca = self.cert = None
        self.conf = self.root / "httpd.conf"
        self.docroot = self.root / "htdocs"
        self.proc = None
        self._make_tree()
        self.write_config()

    # ---------- the ServerRoot ----------
    def _make_tree(self):
        for d in ("htdocs/dashboard", "htdocs/public", "cgi-bin", "logs", "run"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        files = {
            "htdocs/index.html": "<h1>home</h1>\n",
            "htdocs/public/index.html": "<h1>public</h1>\n",
            "htdocs/dashboard/index.html": "<h1>dashboard</h1>\n",
            "htdocs/dashboard/whoami.php": WHOAMI_PHP,
            "cgi-bin/whoami": WHOAMI_CGI,
        }
        for name, text in files.items():
            (self.root / name).write_text(text)
        os.chmod(self.root / "cgi-bin/whoami", 0o755)
        if self.tls:
            ca, cert, key = tls_material()
            for src, name in ((ca, "tls-ca.pem"), (cert, "tls-cert.pem"), (key, "tls-key.pem")):
                shutil.copy(src, self.root / name)
            self.ca, self.cert = str(self.root / "tls-ca.pem"), str(self.root / "tls-cert.pem")

    def _subst(self, text):
        pairs = [("@ROOT@", str(self.root)), ("@DOCROOT@", str(self.docroot)),
                 ("@URL@", self.url), ("@PORT@", str(self.port))]
        pairs += [("@PORT%d@" % i, str(p)) for i, p in enumerate(self.ports) if i]
        for k, v in sorted(pairs, key=lambda kv: -len(kv[0])):
            text = text.replace(k, v)
        return text

    def default_scalekit_conf(self):
        """The Scalekit* directives for self.idp (empty without one: the module's env defaults apply)."""
        if self.idp is None:
            return ""
        lines = ["ScalekitEnvironmentURL %s" % (self.idp.https_url if self.idp_https else self.idp.url),
                 "ScalekitClientID %s" % self.idp.client_id,
                 "ScalekitClientSecret %s" % self.idp.client_secret,
                 "ScalekitRedirectURI %s/api/auth/callback" % self.url]
        ca = getattr(self.idp, "ca", None)
        if ca and os.path.exists(ca):
            # The IdP's state dir may sit under pytest's 0700 tmp dir: give www-data its own copy.
            shutil.copy(ca, self.root / "idp-ca.pem")
            os.chmod(self.root / "idp-ca.pem", 0o644)
            lines.append("ScalekitCAFile %s" % (self.root / "idp-ca.pem"))
        return "\n".join(lines) + "\n"

    def write_config(self):
        mods = ["mpm_" + self.mpm, "authn_core", "authz_core", "authz_user", "authz_host", "mime",
                "dir", "alias", "env", "setenvif", "headers", "socache_shmcb",
                "cgi" if self.mpm == "prefork" else "cgid"]
        if self.proxy:
            mods += ["proxy", "proxy_http"]
        if self.tls:
            mods += ["ssl"] + (["http2"] if self.h2 else [])
        mods += [m for m in self.extra_modules if m not in mods]
        load = ["LoadModule %s_module %s/mod_%s.so" % (m, MODDIR, m) for m in mods]
        if self.php:
            load.append("LoadModule php_module %s/libphp8.2.so" % MODDIR)
        if self.load_scalekit:
            load.append("LoadModule scalekit_module %s" % self.module_path)
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        php = ('<FilesMatch "\\.php$">\n    SetHandler application/x-httpd-php\n</FilesMatch>\n'
               "DirectoryIndex index.php index.html\n") if self.php else ""
        if self.load_scalekit:
            sk = self.scalekit_conf if self.scalekit_conf is not None else self.default_scalekit_conf()
            locations = DEFAULT_LOCATIONS if self.locations is None else self.locations
        else:
            sk, locations = "", self.locations or ""
        listen = "".join("Listen 127.0.0.1:%d\n" % p for p in self.ports)
        if self.tls:
            # Server-wide: virtual hosts on the extra ports inherit it.
            listen += ("SSLEngine on\nSSLCertificateFile %s/tls-cert.pem\n"
                       "SSLCertificateKeyFile %s/tls-key.pem\n"
                       "SSLSessionCache shmcb:%s/run/ssl_scache(512000)\n" % ((self.root,) * 3))
            if self.h2:
                listen += "Protocols h2 http/1.1\n"
        conf = f"""# generated by tests/lib/httpd.py
ServerRoot {self.root}
{chr(10).join(load)}
{listen}ServerName {self.public_host}:{self.port}
{user}PidFile {self.root}/run/httpd.pid
DefaultRuntimeDir {self.root}/run
Mutex file:{self.root}/run default
ErrorLog {self.root}/logs/error_log
LogLevel {self.loglevel}
LogFormat {LOG_FORMAT} sktest
CustomLog {self.root}/logs/access_log sktest
TypesConfig /etc/mime.types
DocumentRoot {self.docroot}
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory {self.docroot}>
    Require all granted
</Directory>
ScriptAlias /cgi-bin/ {self.root}/cgi-bin/
<Directory {self.root}/cgi-bin>
    Require all granted
</Directory>
{php}
# ---- Scalekit ----
{sk}
{locations}
# ---- extra_conf ----
{self.extra_conf}
"""
        self.conf.write_text(self._subst(conf))

    # ---------- process control ----------
    def _env(self):
        # The module's directives default to $SCALEKIT_*: don't let a developer's shell leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
        env.update(self.env)
        if self.asan:
            # Reports go to stderr, i.e. error_log (children) and logs/stderr (parent). Not log_path:
            # with gcc's two runtimes (libasan + libubsan) preloaded it is ignored.
            env["LD_PRELOAD"] = sanitizer_preload()
            # PHP dlopens its extensions (conf.d/*.ini) with RTLD_DEEPBIND, which ASan aborts on.
            env["PHP_INI_SCAN_DIR"] = ""
        return env

    # What error_log says once httpd is ready; None: the answering port is enough.
    ready_line = "resuming normal operations"

    def _cmd(self, *args):
        return [APACHE, "-d", str(self.root), "-f", str(self.conf), *args]

    def config_test(self):
        """`apache2 -t` on this config: (rc, output)."""
        p = subprocess.run(self._cmd("-t"), env=self._env(), capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr

    def start(self):
        self._stderr = open(self.root / "logs" / "stderr", "ab")
        # A child in its own process group, in the foreground: it can't daemonize away from us.
        self.proc = subprocess.Popen(self._cmd("-DFOREGROUND"), env=self._env(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            # The port answers once it is bound, before the MPM installs its signal handlers:
            # a graceful restart (SIGUSR1) sent in between would kill httpd. Ready means logged.
            if self.ready_line is None or self.ready_line in self.error_log():
                return self
            time.sleep(0.05)
        why = "exited with %s" % self.proc.returncode if self.proc.poll() is not None else "did not answer in %ss" % self.timeout
        self.stop()
        raise HttpdError("httpd %s (%s)\n--- apache2 -t:\n%s\n--- stderr:\n%s\n--- error_log tail:\n%s" % (
            why, self.root, self.config_test()[1], self._read("logs/stderr")[-3000:], self.error_log()[-3000:]))

    def _signal_and_wait_restart(self, sig):
        before = self.error_log().count("resuming normal operations")
        os.kill(self.proc.pid, sig)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HttpdError("httpd exited on restart:\n" + self.error_log()[-3000:])
            if self.error_log().count("resuming normal operations") > before:
                return self
            time.sleep(0.05)
        raise HttpdError("httpd did not restart in %ss:\n%s" % (self.timeout, self.error_log()[-3000:]))

    def graceful(self, settle=False, **changes):
        """Graceful restart (SIGUSR1); keyword arguments change the settings and rewrite the config
        first. An old child may still accept a connection after the parent has logged the restart
        (it serves it with the old configuration): settle=True also waits until they are gone."""
        self._reconfigure(changes)
        old = [pid for pid, _ in self.children()] if settle else []
        self._signal_and_wait_restart(signal.SIGUSR1)
        return self._settle(old)

    def children(self):
        """The parent's children now (workers, mod_cgid's daemon) as (pid, state letter)."""
        parent, out = str(self.proc.pid), []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == parent:
                out.append((int(d), fields[0]))
        return out

    def _settle(self, old_children, timeout=30):
        """Wait until these children (a previous generation) have exited."""
        deadline = time.monotonic() + timeout
        while True:
            alive = set(self.pids()) & set(old_children)
            if not alive:
                return self
            if time.monotonic() > deadline:
                raise HttpdError("children of the previous generation still alive: %s" % sorted(alive))
            time.sleep(0.1)

    def restart(self, **changes):
        """Hard restart (SIGHUP): children are killed, the parent re-reads the config."""
        self._reconfigure(changes)
        return self._signal_and_wait_restart(signal.SIGHUP)

    def _reconfigure(self, changes):
        for k, v in changes.items():
            if not hasattr(self, k):
                raise TypeError("unknown Httpd setting %r" % k)
            setattr(self, k, v)
        if self.php:
            self.mpm = "prefork"
        if changes:
            self.write_config()

    def pids(self):
        """Every live process started from this ServerRoot (parent, children, cgid daemon)."""
        mine = []
        needle = str(self.conf).encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if needle in f.read():
                        mine.append(int(d))
            except OSError:
                pass
        return mine

    def stop(self):
        """SIGTERM (apache's graceful stop of the foreground parent), then SIGKILL whatever is left."""
        crashed = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(self.timeout)
                if rc < 0:                 # a clean stop exits 0; a signal here is a crash at exit
                    crashed = "apache2 died of signal %d while stopping" % -rc
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # strays in our process group (CGI, cgid)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None
        if crashed:
            raise HttpdError(crashed)

    def sanitizer_reports(self):
        """ASan/UBSan/LSan reports this server wrote to error_log or stderr, from the first one on; or ""."""
        out = []
        for name in ("logs/error_log", "logs/stderr"):
            m = SANITIZER_REPORT.search(self._read(name))
            if m:
                text = m.string
                out.append("--- %s:\n%s" % (name, text[text.rfind("\n", 0, m.start()) + 1:][:8000]))
        return "\n".join(out)

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------- logs ----------
    def _read(self, name):
        try:
            return (self.root / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def error_log(self):
        return self._read("logs/error_log")

    def access_log(self, at_least=0, timeout=5):
        """Parsed rows: status, method, uri, user, us, bytes. httpd logs a request after answering
        it, so a test that just got its response waits for the row with at_least=N."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self._read("logs/access_log").splitlines()
            if len(lines) >= at_least or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        rows = []
        for line in lines:
            row = dict(zip(LOG_FIELDS, line.split("\t")))
            row["status"], row["us"] = int(row["status"]), int(row["us"])
            row["method"], _, rest = row["request"].partition(" ")
            row["uri"] = rest.rsplit(" ", 1)[0]
            rows.append(row)
        return rows

    def __repr__(self):
        return "<Httpd %s %s>" % (self.url, self.root)
