# SPDX-License-Identifier: Apache-2.0
"""Throw-away Redis and memcached servers on loopback, for the session-store tests."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from httpd import free_port


class StoreServer:
    """Base: a child process listening on 127.0.0.1:port; start(), stop(), restart()."""
    provider = None

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="skstore-")
        self.proc = None

    @property
    def spec(self):
        """The ScalekitSessionStore argument for this server."""
        return "%s:127.0.0.1:%d" % (self.provider, self.port)

    def command(self):
        raise NotImplementedError

    def start(self, timeout=10):
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s" % (self.command()[0], self.proc.returncode))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not listen on %d" % (self.command()[0], self.port))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# What the module needs of Redis, and nothing more: its own keys, the commands it sends, and
# the invalidations of client-side caching.
SCALEKIT_ACL = ["~scalekit:*", "+get", "+set", "+del", "+ping", "+select", "+client|id",
                "+client|tracking", "+subscribe", "&__redis__:invalidate"]


class RedisServer(StoreServer):
    """requirepass: the default user's password; acl_user, acl_password: an ACL user with the
    rights of SCALEKIT_ACL (acl_rules to give others). call() is the default user (with
    requirepass when there is one)."""
    provider = "redis"

    def __init__(self, requirepass=None, acl_user=None, acl_password=None, acl_rules=None):
        super().__init__()
        self.requirepass, self.acl_user, self.acl_password = requirepass, acl_user, acl_password
        self.acl_rules = acl_rules or SCALEKIT_ACL

    def command(self):
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--protected-mode", "yes"]
        if self.requirepass:
            cmd += ["--requirepass", self.requirepass]
        if self.acl_user:
            cmd += ["--user", self.acl_user, "on", ">" + self.acl_password] + self.acl_rules
        return cmd

    def url(self, user=None, password=None, db=None):
        """A redis:// address of this server for ScalekitSessionStore."""
        auth = "%s%s@" % (user or "", ":" + password if password else "") if user or password else ""
        return "redis://%s127.0.0.1:%d%s" % (auth, self.port, "/%d" % db if db is not None else "")

    def call(self, *args):
        """One Redis command over RESP (as the administrator); returns bytes, an int, a list or None."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            f = sock.makefile("rb")
            if self.requirepass:
                _send(sock, ("AUTH", self.requirepass))
                _resp(f)
            _send(sock, args)
            return _resp(f)

    def items(self):
        """Every key and value in the store."""
        return {k: self.call("GET", k) for k in self.call("KEYS", "*")}


def _send(sock, args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)


def _resp(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise RuntimeError("unexpected Redis answer %r" % line)


class MemcachedServer(StoreServer):
    provider = "memcache"

    def command(self):
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"] + user
