#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""skidp: a local identity provider that speaks Scalekit's OAuth2/OIDC protocol.

Scalekit cannot be reached from the test machines, so mod_scalekit is tested against this
server instead. It implements the endpoints, parameters, claims and error shapes described in
shared/reference/scalekit-protocol.md, plus test-only controls under /_control/ (sign-in mode,
test user, key rotation, fault injection, a request log, token minting, and the token shapes
Scalekit's documentation prints: tests/fixtures/scalekit-docs).

Runs on Debian's /usr/bin/python3 with only the standard library and python3-cryptography.

    skidp.py --host 127.0.0.1 --port 0 --https-port 0 --state-dir DIR
             [--client-id skc_demo --client-secret demo-secret] [--auto-login] [--quiet]

When both listeners are bound it prints one JSON line on stdout:
    {"http": "http://127.0.0.1:P", "https": "https://127.0.0.1:Q", "ca": "DIR/ca.pem", "pid": N}
"""

import argparse
import base64
import collections
import datetime
import hashlib
import html
import http.server
import ipaddress
import json
import os
import re
import secrets
import signal
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# ---------------------------------------------------------------------------------------------
# Defaults and limits
# ---------------------------------------------------------------------------------------------

DEFAULT_USER = {
    "sub": "usr_demo001",
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "oid": "org_demo",
    "connection_id": "conn_demo001",
    "xoid": "ext_org_demo",
    "xuid": "ext_usr_demo001",
    "roles": ["admin"],
    "permissions": ["invoices:read", "invoices:write"],
    "email_verified": True,
    "id_token_extra": {},
    "access_token_extra": {},
}

DEFAULT_LIFETIMES = {
    "access": 299,            # Scalekit's access tokens say expires_in 299
    "id": 3600,
    "refresh": 30 * 86400,
    "code": 60,
    "machine": 3600,          # client_credentials tokens: Scalekit's default lifetime
    "jwks_max_age": 300,      # Cache-Control max-age on /keys
    "refresh_id_token": 1,    # 0: refresh answers carry no id_token (OIDC lets a server omit it)
}

USER_FIELDS = set(DEFAULT_USER) | {"given_name", "family_name", "picture", "locale",
                                   "preferred_username"}
PROMPT_VALUES = {"login", "create", "select_account", "none", "consent"}
SIGN_IN_ACTIVE_PROMPTS = {"login", "create", "select_account"}
# slow: wait, then serve; slow-answer: serve (a refresh rotates at once), then wait to answer.
FAULT_MODES = {"none", "slow", "slow-answer", "500", "garbage", "close", "hang"}

MAX_QUERY = 32 * 1024          # longer query strings get a 400
MAX_BODY = 64 * 1024           # larger bodies get a 400
MAX_FIELDS = 64                # more form/query fields than this get a 400
MAX_REDIRECT_URI = 256         # Scalekit's limit on registered redirect URIs
LOG_LIMIT = 20000              # oldest request-log entries are dropped past this
HANG_DEFAULT = 300.0           # "hang" without a delay holds the socket this long
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0            # idle keep-alive connections are closed after this

SESSION_COOKIE = "skidp_session"
# Token shapes as Scalekit's documentation prints them (README.md there names each page).
SHAPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fixtures",
                          "scalekit-docs")
SHAPE_KINDS = ("access", "id", "machine")
SHAPE_NAME_RE = re.compile(r"^[a-z0-9-]+$")
SESSION_REVOKE_RE = re.compile(r"^/api/v1/sessions/([^/]+)/revoke$")
S256_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


# ---------------------------------------------------------------------------------------------
# Small encoding helpers
# ---------------------------------------------------------------------------------------------

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode("utf-8")


def int_to_b64u(value):
    return b64u(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def random_id(prefix):
    """Scalekit ids are a prefix plus a long decimal number (org_59615193906282635)."""
    return prefix + str(10**16 + secrets.randbelow(9 * 10**16))


def half_sha256(value):
    """OIDC at_hash / c_hash: left half of SHA-256 of the ASCII value, base64url."""
    return b64u(hashlib.sha256(value.encode("ascii")).digest()[:16])


def pkce_s256(verifier):
    return b64u(hashlib.sha256(verifier.encode("ascii")).digest())


def add_query(uri, **params):
    """Append params (None values skipped) with RFC 3986 encoding: space is %20, hex upper."""
    pairs = [(k, v) for k, v in params.items() if v is not None]
    if not pairs:
        return uri
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="")
    return uri + ("&" if "?" in uri else "?") + query


def now():
    return int(time.time())


def write_private(path, data):
    """Write a secret file atomically, readable by the owner only."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_public(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)       # Apache children (www-data) read ca.pem
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Signing keys and JWTs
# ---------------------------------------------------------------------------------------------

class SigningKey:
    """One RSA key, with the objects needed to sign and publish it built once."""

    def __init__(self, kid, private_key, created):
        self.kid = kid
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.created = created
        numbers = self.public_key.public_numbers()
        self.jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": int_to_b64u(numbers.n), "e": int_to_b64u(numbers.e)}

    @classmethod
    def generate(cls):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(random_id("snk_"), key, now())

    @classmethod
    def from_record(cls, rec):
        key = serialization.load_pem_private_key(rec["pem"].encode("ascii"), password=None)
        return cls(rec["kid"], key, rec.get("created", 0))

    def record(self):
        pem = self.private_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        return {"kid": self.kid, "created": self.created, "pem": pem.decode("ascii")}

    def public_pem(self):
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data):
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def verify(self, data, signature):
        try:
            self.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            return False


class KeyRing:
    """The signing keys, persisted in STATE_DIR/keys.json so a restart keeps them."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.keys = {}             # kid -> SigningKey, oldest first
        self.current_kid = None
        self._jwks_body = None
        self._load_or_create()

    def _load_or_create(self):
        if os.path.exists(self.path):
            with open(self.path) as f:
                data = json.load(f)
            for rec in data["keys"]:
                key = SigningKey.from_record(rec)
                self.keys[key.kid] = key
            self.current_kid = data["current"]
        if self.current_kid not in self.keys:
            key = SigningKey.generate()
            self.keys[key.kid] = key
            self.current_kid = key.kid
            self._save()

    def _save(self):
        data = {"current": self.current_kid, "keys": [k.record() for k in self.keys.values()]}
        write_private(self.path, json.dumps(data, indent=1).encode("utf-8"))

    def current(self):
        return self.keys[self.current_kid]

    def get(self, kid):
        return self.keys.get(kid)

    def rotate(self, keep_old=True):
        key = SigningKey.generate()          # slow part outside the lock
        with self.lock:
            if not keep_old:
                self.keys.clear()
            self.keys[key.kid] = key
            self.current_kid = key.kid
            self._jwks_body = None
            self._save()
        return key.kid

    def jwks_body(self):
        """The /keys body, serialised once per key set: it is the hottest endpoint."""
        body = self._jwks_body
        if body is None:
            body = compact_json({"keys": [k.jwk for k in list(self.keys.values())]})
            self._jwks_body = body
        return body

    def summary(self):
        return {"current": self.current_kid, "kids": list(self.keys)}


SIGN_MODES = ("current", "none", "bad", "unknown", "hs256")
_stranger = []


def stranger_key():
    """A key that is never published in /keys, made once (key generation is slow)."""
    if not _stranger:
        _stranger.append(SigningKey.generate())
    return _stranger[0]


def encode_jwt(claims, key, header=None, sign="current"):
    """Compact JWS. sign: current (RS256 with key), none (alg none, empty signature),
    bad (RS256 header, signature that does not verify), unknown (a key not in /keys),
    hs256 (HMAC keyed with the public key PEM: the classic algorithm-confusion attack)."""
    if sign not in SIGN_MODES:
        raise ValueError("sign must be one of " + ", ".join(SIGN_MODES))
    hdr = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    if sign == "none":
        hdr["alg"] = "none"
        hdr.pop("kid")
    elif sign == "hs256":
        hdr["alg"] = "HS256"
    elif sign == "unknown":
        key = stranger_key()
        hdr["kid"] = key.kid
    for name, value in (header or {}).items():
        if value is None:
            hdr.pop(name, None)
        else:
            hdr[name] = value
    signing_input = (b64u(compact_json(hdr)) + "." + b64u(compact_json(claims))).encode("ascii")
    if sign == "none":
        signature = b""
    elif sign == "hs256":
        mac = hmac.HMAC(key.public_pem(), hashes.SHA256())
        mac.update(signing_input)
        signature = mac.finalize()
    elif sign == "bad":
        signature = bytearray(key.sign(signing_input))
        signature[-1] ^= 0x01
        signature = bytes(signature)
    else:
        signature = key.sign(signing_input)
    return signing_input.decode("ascii") + "." + b64u(signature)


def verify_jwt(token, keyring):
    """Check an RS256 token's signature against our keys; return its claims or raise ValueError.
    Expiry is the caller's business (an id_token_hint may be expired)."""
    try:
        head_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(b64u_decode(head_b64))
        claims = json.loads(b64u_decode(claims_b64))
        signature = b64u_decode(sig_b64)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("malformed token")
    if header.get("alg") != "RS256":
        raise ValueError("unsupported alg")
    key = keyring.get(header.get("kid"))
    if key is None:
        raise ValueError("unknown kid")
    if not key.verify((head_b64 + "." + claims_b64).encode("ascii"), signature):
        raise ValueError("bad signature")
    return claims


# ---------------------------------------------------------------------------------------------
# TLS material: a throw-away CA and a server certificate for 127.0.0.1 / localhost
# ---------------------------------------------------------------------------------------------

def _cert_usable(path, min_seconds_left=3600):
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after - datetime.datetime.utcnow()
    return left.total_seconds() > min_seconds_left


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "skidp test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_cert(subject, key, issuer, issuer_key, days, is_ca):
    start = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None),
                              critical=True)
               .add_extension(ski, critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if is_ca:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
    else:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=True, data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                           x509.DNSName("localhost")])
        builder = (builder.add_extension(san, critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False))
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def ensure_tls_files(state_dir):
    """Create ca.pem, server.pem, server.key unless usable ones exist (a restart keeps the CA)."""
    ca_path = os.path.join(state_dir, "ca.pem")
    cert_path = os.path.join(state_dir, "server.pem")
    key_path = os.path.join(state_dir, "server.key")
    if all(os.path.exists(p) for p in (ca_path, cert_path, key_path)) \
            and _cert_usable(ca_path) and _cert_usable(cert_path):
        os.chmod(ca_path, 0o644)
        return ca_path, cert_path, key_path
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("skidp throw-away CA " + secrets.token_hex(4))
    ca_cert = _new_cert(ca_name, ca_key, ca_name, ca_key, days=30, is_ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = _new_cert(_name("127.0.0.1"), server_key, ca_name, ca_key, days=29,
                            is_ca=False)
    write_private(key_path, server_key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    write_public(cert_path, server_cert.public_bytes(serialization.Encoding.PEM))
    write_public(ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_path, cert_path, key_path


# ---------------------------------------------------------------------------------------------
# Protocol state: clients, test user, sign-in sessions, codes, refresh tokens
# ---------------------------------------------------------------------------------------------

def load_shape(name):
    """A documented token shape (tests/fixtures/scalekit-docs/NAME.json)."""
    if not isinstance(name, str) or not SHAPE_NAME_RE.match(name):
        raise ValueError("bad shape name")
    with open(os.path.join(SHAPES_DIR, name + ".json")) as f:
        return json.load(f)


def fresh_shape(shape, issuer, t, life):
    """The claims as printed, and the shape's custom claims beside them, with fresh times and
    this listener's issuer."""
    claims = json.loads(json.dumps(shape["claims"]))
    claims.update(shape.get("custom_claims") or {})
    claims["iss"] = issuer
    for name in ("iat", "nbf"):
        if name in claims:
            claims[name] = t
    if "exp" in claims:
        claims["exp"] = t + life
    return claims


def bind_shape(shape, claims, client_id):
    """What ties a shaped token to this IdP's sign-in: the client the page names becomes the
    real client (in client_id, azp and an aud equal to it), and the jti is fresh."""
    printed = shape["claims"].get("client_id") or shape["claims"].get("azp")
    for name in ("client_id", "azp"):
        if name in claims:
            claims[name] = client_id
    aud = claims.get("aud")
    if printed and isinstance(aud, list):
        claims["aud"] = [client_id if a == printed else a for a in aud]
    elif printed and aud == printed:
        claims["aud"] = client_id
    if "jti" in claims:
        claims["jti"] = random_id("tkn_")
    return claims


def custom_claims(client):
    """An API client's custom_claims: Scalekit's [{"key": K, "value": V}] list, or a dict."""
    found = client.get("custom_claims") or {}
    if isinstance(found, list):
        return {item["key"]: item["value"] for item in found}
    return dict(found)


class OAuthError(Exception):
    """An error answered as JSON {error, error_description}."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class Session:
    """One IdP sign-in (what Scalekit's own cookie points at); sid stays the same on refresh."""

    def __init__(self, overrides):
        self.sid = random_id("ses_")
        self.cookie = secrets.token_urlsafe(24)
        self.overrides = overrides     # what this sign-in changed: email, name, oid, connection
        self.created = now()
        self.active = True


class Fault:
    """Injected misbehaviour for non-control requests (see /_control/fault)."""

    def __init__(self, mode="none", delay=0.0, paths=None, count=None):
        self.mode = mode
        self.delay = float(delay)
        if isinstance(paths, str):
            paths = [paths]
        self.paths = list(paths) if paths else None
        self.count = count

    def matches(self, path):
        if self.mode == "none":
            return False
        if self.paths is None:
            return True
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)

    def describe(self):
        return {"mode": self.mode, "delay": self.delay, "paths": self.paths, "count": self.count}


class IdPState:
    """Everything both listeners share. One lock; signing happens outside it."""

    def __init__(self, keyring, client_id, client_secret, auto_login):
        self.lock = threading.Lock()
        self.keyring = keyring
        self.initial = {"client_id": client_id, "client_secret": client_secret,
                        "auto_login": auto_login}
        self.issuers = []              # base URLs of our listeners
        self.started = time.time()
        self.reset()

    def reset(self):
        with self.lock:
            self.clients = {}
            self._add_client(self.initial["client_id"], self.initial["client_secret"])
            self.user = json.loads(json.dumps(DEFAULT_USER))
            self.lifetimes = dict(DEFAULT_LIFETIMES)
            self.shapes = {}           # kind -> documented shape the IdP issues (set_shape)
            self.auto_login = self.initial["auto_login"]
            self.fault = Fault()
            self.log = collections.deque(maxlen=LOG_LIMIT)
            self.stats = {"endpoints": collections.Counter(), "grants": collections.Counter(),
                          "codes": collections.Counter(), "refresh_tokens": collections.Counter(),
                          "faults": collections.Counter()}
            self.sessions = {}         # sid -> Session
            self.by_cookie = {}        # cookie value -> Session
            self.codes = {}            # code -> dict
            self.refresh_tokens = {}   # token -> dict
            self.last_purge = time.time()

    # --- clients ---------------------------------------------------------------------------

    def _add_client(self, client_id, secret, redirect_uris=None, audience=None, oid=None,
                    custom=None):
        self.clients[client_id] = {"client_id": client_id, "secret": secret,
                                   "redirect_uris": redirect_uris, "audience": audience,
                                   "oid": oid, "custom_claims": custom}

    def add_client(self, payload):
        client_id = payload.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise OAuthError(400, "invalid_request", "client_id is required")
        with self.lock:
            self._add_client(client_id, payload.get("client_secret"),
                             payload.get("redirect_uris"), payload.get("audience"),
                             payload.get("oid"), payload.get("custom_claims"))
        custom_claims(self.clients[client_id])      # a malformed list is refused now

    def set_shapes(self, payload):
        """Which documented shape each kind of issued token takes (null: the IdP's own)."""
        loaded = {}
        for kind, name in payload.items():
            if kind not in SHAPE_KINDS:
                raise ValueError("shape kinds are " + ", ".join(SHAPE_KINDS))
            loaded[kind] = load_shape(name) if name else None
        with self.lock:
            for kind, shape in loaded.items():
                if shape is None:
                    self.shapes.pop(kind, None)
                else:
                    self.shapes[kind] = shape
            return {kind: shape["doc"] for kind, shape in self.shapes.items()}

    def client(self, client_id):
        return self.clients.get(client_id) if isinstance(client_id, str) else None

    def authenticate_client(self, form):
        """client_secret_post: the secret in the body; a public client (no secret) sends none."""
        client = self.client(form.get("client_id"))
        if client is None:
            raise OAuthError(401, "invalid_client", "unknown client")
        expected = client["secret"]
        given = form.get("client_secret")
        if expected:
            if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
                raise OAuthError(401, "invalid_client", "client authentication failed")
        elif given:
            raise OAuthError(401, "invalid_client", "public client must not send a secret")
        return client

    # --- the test user and sign-in sessions ------------------------------------------------

    def update_user(self, payload):
        with self.lock:
            if payload.pop("_replace", False):
                self.user = json.loads(json.dumps(DEFAULT_USER))
            for name, value in payload.items():
                if name in ("id_token_extra", "access_token_extra") and isinstance(value, dict):
                    self.user[name].update(value)
                elif name in USER_FIELDS:
                    self.user[name] = value
                else:      # anything else is an extra ID-token claim
                    self.user["id_token_extra"][name] = value
            return json.loads(json.dumps(self.user))

    def start_session(self, overrides):
        session = Session(overrides)
        with self.lock:
            self.sessions[session.sid] = session
            self.by_cookie[session.cookie] = session
        return session

    def session_by_cookie(self, cookie):
        session = self.by_cookie.get(cookie) if cookie else None
        return session if session is not None and session.active else None

    def end_sessions(self, sids):
        """Sign-out / revoke: the browser session ends and its refresh tokens stop working."""
        ended = []
        with self.lock:
            for sid in sids:
                session = self.sessions.get(sid)
                if session is not None and session.active:
                    session.active = False
                    self.by_cookie.pop(session.cookie, None)
                    ended.append(sid)
        return ended

    def claims_for(self, session):
        """The current test user as seen through one sign-in (its typed email/name, org)."""
        with self.lock:
            user = json.loads(json.dumps(self.user))
        user.update(session.overrides)
        name = user.get("name") or ""
        first, _, last = name.partition(" ")
        user.setdefault("given_name", first)
        user.setdefault("family_name", last)
        return user

    # --- authorization codes ---------------------------------------------------------------

    def issue_code(self, request):
        code = secrets.token_urlsafe(32)
        with self.lock:
            self._maybe_purge()
            self.codes[code] = dict(request, issued=time.time(), used=False)
            self.stats["codes"]["issued"] += 1
        return code

    def _maybe_purge(self):
        """Forget codes and spent refresh tokens after 10 minutes (a refused-anyway reuse then
        reads as "unknown"), so benchmark load does not grow memory without bound. At most
        every 30 s: a scan per request would make issuance O(n)."""
        t = time.time()
        if t - self.last_purge < 30:
            return
        self.last_purge = t
        horizon = t - 600
        self.codes = {c: rec for c, rec in self.codes.items() if rec["issued"] >= horizon}
        self.refresh_tokens = {k: rec for k, rec in self.refresh_tokens.items()
                               if rec["exp"] > t and rec["used_at"] >= horizon}

    def redeem_code(self, client_id, form):
        code = form.get("code")
        if not code:
            raise OAuthError(400, "invalid_request", "code is required")
        with self.lock:
            rec = self.codes.get(code)
            problem = self._code_problem(rec, client_id, form)
            if rec is not None:
                rec["used"] = True     # a code is burnt by any attempt to use it
            self.stats["codes"]["refused" if problem else "redeemed"] += 1
            session = self.sessions.get(rec["sid"]) if rec else None
        if problem:
            raise OAuthError(400, "invalid_grant", problem)
        if session is None or not session.active:
            raise OAuthError(400, "invalid_grant", "the sign-in session has ended")
        return rec, session

    def _code_problem(self, rec, client_id, form):
        if rec is None:
            return "unknown authorization code"
        if rec["used"]:
            return "authorization code already used"
        if time.time() - rec["issued"] > self.lifetimes["code"]:
            return "authorization code expired"
        if rec["client_id"] != client_id:
            return "authorization code was issued to another client"
        if rec["redirect_uri"] != form.get("redirect_uri"):
            return "redirect_uri does not match the authorization request"
        verifier = form.get("code_verifier")
        if rec["code_challenge"]:
            if not verifier or not VERIFIER_RE.match(verifier):
                return "code_verifier missing or malformed"
            if not secrets.compare_digest(pkce_s256(verifier), rec["code_challenge"]):
                return "code_verifier does not match code_challenge"
        elif verifier:
            return "code_verifier sent but no code_challenge was in the authorization request"
        return None

    # --- refresh tokens --------------------------------------------------------------------

    def issue_refresh(self, client_id, session, scope):
        token = secrets.token_urlsafe(32)
        with self.lock:
            self._maybe_purge()
            self.refresh_tokens[token] = {"client_id": client_id, "sid": session.sid,
                                          "scope": scope, "used": False,
                                          "used_at": float("inf"),
                                          "exp": now() + self.lifetimes["refresh"]}
            self.stats["refresh_tokens"]["issued"] += 1
        return token

    def use_refresh(self, client_id, token):
        """Rotation: a refresh token works once. Presenting a used one again means two
        refreshes raced (or a token leaked): Scalekit then ends the session."""
        if not token:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        with self.lock:
            rec = self.refresh_tokens.get(token)
            problem = self._refresh_problem(rec, client_id)
            if problem:
                self.stats["refresh_tokens"]["refused"] += 1
                if rec is not None and rec["used"]:
                    self._end_session_locked(rec["sid"])
                raise OAuthError(400, "invalid_grant", problem)
            rec["used"] = True
            rec["used_at"] = time.time()
            self.stats["refresh_tokens"]["used"] += 1
            return rec, self.sessions[rec["sid"]]

    def _refresh_problem(self, rec, client_id):
        if rec is None:
            return "unknown refresh token"
        if rec["used"]:
            return "refresh token already used"
        if rec["client_id"] != client_id:
            return "refresh token was issued to another client"
        if rec["exp"] < now():
            return "refresh token expired"
        session = self.sessions.get(rec["sid"])
        if session is None or not session.active:
            return "the session has ended"
        return None

    def _end_session_locked(self, sid):
        session = self.sessions.get(sid)
        if session is not None:
            session.active = False
            self.by_cookie.pop(session.cookie, None)

    # --- tokens ----------------------------------------------------------------------------

    def sign(self, claims, header=None, kid=None, sign="current"):
        key = self.keyring.get(kid) if kid else self.keyring.current()
        if key is None:
            raise OAuthError(400, "invalid_request", "unknown kid")
        return encode_jwt(claims, key, header, sign)

    def user_tokens(self, issuer, client, session, scope, nonce=None, code=None):
        """The token response for the code and refresh grants."""
        user = self.claims_for(session)
        t = now()
        life = self.lifetimes
        client_id = client["client_id"]
        shape = self.shapes.get("access")
        if shape:
            access = bind_shape(shape, fresh_shape(shape, issuer, t, life["access"]), client_id)
            access.update(sub=user["sub"], sid=session.sid)
        else:
            access = {"iss": issuer, "aud": client["audience"] or [client_id],
                      "sub": user["sub"], "oid": user["oid"], "sid": session.sid,
                      "jti": random_id("tkn_"), "iat": t, "nbf": t, "exp": t + life["access"],
                      "client_id": client_id, "roles": user["roles"],
                      "permissions": user["permissions"], "scope": scope,
                      "xoid": user["xoid"], "xuid": user["xuid"]}
        access.update(user["access_token_extra"])
        access_token = self.sign(access)
        response = {"access_token": access_token,
                    "id_token": self.sign(self._id_claims(issuer, client_id, session, user, t,
                                                          access_token, nonce, code)),
                    "token_type": "Bearer", "expires_in": life["access"], "scope": scope}
        if "offline_access" in scope.split():
            response["refresh_token"] = self.issue_refresh(client_id, session, scope)
        return response

    def _id_claims(self, issuer, client_id, session, user, t, access_token, nonce, code):
        shape = self.shapes.get("id")
        if shape:
            claims = bind_shape(shape, fresh_shape(shape, issuer, t, self.lifetimes["id"]),
                                client_id)
            claims.update(sub=user["sub"], sid=session.sid, at_hash=half_sha256(access_token))
            # c_hash and nonce belong to a code and an authorization request: a refresh has
            # neither (OpenID Connect Core 12.2).
            claims.pop("c_hash", None)
            claims.pop("nonce", None)
        else:
            claims = {"iss": issuer, "aud": [client_id], "azp": client_id, "sub": user["sub"],
                      "oid": user["oid"], "sid": session.sid, "iat": t,
                      "exp": t + self.lifetimes["id"], "at_hash": half_sha256(access_token),
                      "amr": [user["connection_id"]], "client_id": client_id,
                      "email": user["email"], "email_verified": user["email_verified"],
                      "name": user["name"], "given_name": user["given_name"],
                      "family_name": user["family_name"]}
            for optional in ("picture", "locale", "preferred_username"):
                if user.get(optional):
                    claims[optional] = user[optional]
        if code:
            claims["c_hash"] = half_sha256(code)
        if nonce:
            claims["nonce"] = nonce
        claims.update(user["id_token_extra"])
        return claims

    def machine_token(self, issuer, client, scope):
        """A client_credentials token as the M2M quickstart shows it: no aud unless the API
        client was registered with an audience list; its custom_claims beside the rest."""
        t = now()
        client_id = client["client_id"]
        life = self.lifetimes["machine"]
        shape = self.shapes.get("machine")
        if shape:
            claims = bind_shape(shape, fresh_shape(shape, issuer, t, life), client_id)
            claims["sub"] = client_id
            if scope:
                claims["scopes"] = scope.split()
            if client["oid"]:
                claims["oid"] = client["oid"]
        else:
            claims = {"client_id": client_id, "exp": t + life, "iat": t, "iss": issuer,
                      "jti": random_id("tkn_"), "nbf": t,
                      "oid": client["oid"] or self.user["oid"], "scopes": scope.split(),
                      "sub": client_id}
        claims.pop("aud", None)
        if client["audience"]:
            claims["aud"] = list(client["audience"])
        claims.update(custom_claims(client))
        response = {"access_token": self.sign(claims), "token_type": "Bearer",
                    "expires_in": self.lifetimes["machine"]}
        if scope:
            response["scope"] = scope
        return response

    def verify_machine_token(self, token):
        """Bearer token of the management API: one of our client_credentials tokens."""
        try:
            claims = verify_jwt(token, self.keyring)
        except ValueError as exc:
            raise OAuthError(401, "invalid_token", str(exc)) from exc
        if claims.get("iss") not in self.issuers or not isinstance(claims.get("scopes"), list):
            raise OAuthError(401, "invalid_token", "not a client credentials token")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now():
            raise OAuthError(401, "invalid_token", "token expired")
        if self.client(claims.get("sub")) is None:
            raise OAuthError(401, "invalid_token", "unknown client")
        return claims

    # --- request log and stats -------------------------------------------------------------

    def record(self, entry, endpoint):
        with self.lock:
            self.log.append(entry)
            self.stats["endpoints"][endpoint] += 1

    def take_fault(self, path):
        """The fault to apply to this request, if any; counts down `count`."""
        with self.lock:
            fault = self.fault
            if not fault.matches(path):
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.fault = Fault()
            self.stats["faults"][fault.mode] += 1
            return fault.mode, fault.delay


# ---------------------------------------------------------------------------------------------
# Request validation helpers
# ---------------------------------------------------------------------------------------------

def redirect_uri_problem(uri, client, allow_query=False):
    """Why this redirect URI is refused, or None. Registered URIs win; otherwise any
    http(s) URI on 127.0.0.1 / localhost / [::1] passes (the test machines' apps)."""
    if not uri:
        return "redirect_uri is required"
    if len(uri) > MAX_REDIRECT_URI:
        return "redirect_uri is longer than %d characters" % MAX_REDIRECT_URI
    if "#" in uri or (not allow_query and "?" in uri):
        return "redirect_uri must not carry a query string or fragment"
    if client and client.get("redirect_uris"):
        if uri in client["redirect_uris"]:
            return None
        return "redirect_uri is not registered for this client"
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port           # raises on a bad port
    except ValueError:
        return "redirect_uri is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "redirect_uri must be http or https"
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return "redirect_uri host is not registered (only loopback hosts are)"
    return None


def authorize_param_problem(p):
    """(error, description) for a bad authorization request that can go back to the client."""
    if p.get("response_type") != "code":
        return "unsupported_response_type", "response_type must be code"
    if "openid" not in (p.get("scope") or "").split():
        return "invalid_scope", "scope must contain openid"
    challenge = p.get("code_challenge")
    method = p.get("code_challenge_method")
    if method is not None and method != "S256":
        return "invalid_request", "code_challenge_method must be S256 (plain is not supported)"
    if challenge is not None:
        if method is None:
            return "invalid_request", "code_challenge_method is required (S256)"
        if not S256_CHALLENGE_RE.match(challenge):
            return "invalid_request", "code_challenge is not a base64url SHA-256 value"
    elif method is not None:
        return "invalid_request", "code_challenge_method without code_challenge"
    prompts = set((p.get("prompt") or "").split())
    if prompts - PROMPT_VALUES:
        return "invalid_request", "unsupported prompt value"
    if "none" in prompts and len(prompts) > 1:
        return "invalid_request", "prompt=none cannot be combined with other values"
    return None


def single_values(multi):
    """dict of lists -> dict of strings; a repeated parameter is an error (RFC 6749 3.1)."""
    repeated = [k for k, v in multi.items() if len(v) > 1]
    if repeated:
        raise OAuthError(400, "invalid_request", "repeated parameter: " + repeated[0])
    return {k: v[0] for k, v in multi.items()}


def parse_form(text):
    return urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)


# ---------------------------------------------------------------------------------------------
# HTML pages
# ---------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:3rem 1rem}}
main{{max-width:24rem;margin:auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.15)}}
label{{display:block;margin:.8rem 0 .2rem}} input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1.2rem;padding:.6rem 1.2rem}} .note{{color:#666;font-size:.85rem}}
</style></head>
<body><main>
{body}
</main></body></html>
"""

SIGNIN_BODY = """<h1>Sign in</h1>
<p class="note">Local Scalekit test identity provider. Continue as:</p>
<form method="post" action="/oauth/authorize">
{hidden}
<input type="hidden" name="skidp_signin" value="1">
<label for="email">Email</label>
<input id="email" type="email" name="email" value="{email}" autocomplete="username">
<label for="name">Name</label>
<input id="name" type="text" name="name" value="{name}">
<button type="submit" id="signin" name="action" value="signin">Sign in</button>
<button type="submit" id="deny" name="action" value="deny">Cancel</button>
</form>
"""


def render_page(title, body_html):
    return PAGE.format(title=html.escape(title), body=body_html).encode("utf-8")


def message_page(title, message):
    return render_page(title, "<h1>%s</h1>\n<p>%s</p>" % (html.escape(title),
                                                          html.escape(message)))


def signin_page(params, email, name):
    hidden = "\n".join('<input type="hidden" name="%s" value="%s">'
                       % (html.escape(k), html.escape(v))
                       for k, v in params.items() if k not in ("email", "name", "action",
                                                               "skidp_signin"))
    body = SIGNIN_BODY.format(hidden=hidden, email=html.escape(email or ""),
                              name=html.escape(name or ""))
    return render_page("Sign in \u2014 Local Scalekit", body)


# ---------------------------------------------------------------------------------------------
# HTTP layer
# ---------------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # keep-alive; every response has a Content-Length
    server_version = "skidp/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True       # headers and body go out in two writes

    # --- plumbing --------------------------------------------------------------------------

    def version_string(self):
        return self.server_version

    @property
    def state(self):
        return self.server.state

    @property
    def issuer(self):
        return self.server.base_url

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("%s [%s] %s\n" % (self.server.listener, self.log_date_time_string(),
                                               fmt % args))

    def send_response(self, code, message=None):
        self.status = code
        entry = getattr(self, "log_entry", None)
        if entry is not None:
            entry["status"] = code      # logged before the client can read the answer
        super().send_response(code, message)

    def send_body(self, status, body, content_type, headers=None):
        delay, self.answer_delay = getattr(self, "answer_delay", 0), 0
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            if isinstance(value, list):
                for v in value:
                    self.send_header(name, v)
            else:
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":     # 1.0 clients asked for keep-alive
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=None):
        self.send_body(status, compact_json(obj), "application/json", headers)

    def send_html(self, status, body, headers=None):
        hdrs = {"Cache-Control": "no-store"}
        hdrs.update(headers or {})
        self.send_body(status, body, "text/html; charset=utf-8", hdrs)

    def send_oauth_error(self, err):
        self.send_json(err.status, {"error": err.error, "error_description": err.description},
                       {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def redirect(self, location, headers=None):
        hdrs = {"Location": location, "Cache-Control": "no-store"}
        hdrs.update(headers or {})
        self.send_body(302, b"", "text/plain; charset=utf-8", hdrs)

    def cookie(self, name):
        for part in self.headers.get_all("Cookie") or []:
            for item in part.split(";"):
                key, _, value = item.strip().partition("=")
                if key == name:
                    return value
        return None

    def read_body(self):
        """The request body as text, or raise OAuthError for oversized / unsupported bodies."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise OAuthError(411, "invalid_request", "chunked bodies are not supported")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise OAuthError(400, "invalid_request", "request body missing length or too large")
        data = self.rfile.read(length) if length else b""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OAuthError(400, "invalid_request", "body is not UTF-8") from exc

    # --- dispatch --------------------------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def dispatch(self):
        self.status = None
        self.log_entry = None
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        try:
            if path.startswith("/_control/"):
                self.handle_control(path)
            else:
                self.handle_protocol(path, url.query)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True        # the client went away mid-request
        except Exception:       # never crash the thread; tell the client and the log
            traceback.print_exc()
            self.close_connection = True
            if self.status is None:
                self.send_json(500, {"error": "server_error",
                                     "error_description": "internal error in skidp"})

    def handle_protocol(self, path, query):
        entry = {"t": time.time(), "method": self.command, "path": path, "query": {},
                 "form": {}, "headers": dict(self.headers.items()),
                 "listener": self.server.listener, "status": None}
        self.log_entry = entry
        self.state.record(entry, endpoint_name(path))
        try:
            entry["query"], entry["form"] = self.read_params(query)
        except OAuthError as err:
            self.send_error_for(path, err)
            entry["status"] = self.status
            return
        fault = self.state.take_fault(path)
        if fault is None or self.apply_fault(*fault):
            self.route(path, entry["query"], entry["form"])
        entry["status"] = self.status

    def read_params(self, query):
        """(query as dict of lists, form as dict of strings). The form is only parsed for
        form-encoded bodies; self.form_multi keeps repeated fields for single_values()."""
        if len(query) > MAX_QUERY:
            raise OAuthError(400, "invalid_request", "query string too long")
        body = self.read_body()
        self.content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            query_params = parse_form(query)
            is_form = self.content_type == "application/x-www-form-urlencoded"
            self.form_multi = parse_form(body) if body and is_form else {}
        except ValueError as exc:       # too many fields
            raise OAuthError(400, "invalid_request", str(exc)) from exc
        return query_params, {k: v[0] for k, v in self.form_multi.items()}

    def send_error_for(self, path, err):
        if path in BROWSER_PATHS:
            self.send_html(err.status, message_page("Bad request", err.description))
        else:
            self.send_oauth_error(err)

    def apply_fault(self, mode, delay):
        """Misbehave as asked. Returns True when the request should then be served normally."""
        if mode == "slow":
            time.sleep(delay)
            return True
        if mode == "slow-answer":
            self.answer_delay = delay
            return True
        if mode == "500":
            self.send_json(500, {"error": "server_error",
                                 "error_description": "injected fault"})
        elif mode == "garbage":
            body = ("%%garbage%% " + secrets.token_hex(24) + " <not json>").encode("ascii")
            self.send_body(200, body, "application/json")
        elif mode in ("close", "hang"):
            if mode == "hang":
                time.sleep(delay or HANG_DEFAULT)
            self.close_connection = True     # the server closes the socket, no answer sent
        return False

    def route(self, path, query, form):
        if SESSION_REVOKE_RE.match(path):
            methods = {"POST": Handler.handle_session_revoke}
        else:
            methods = ROUTES.get(path)
        if methods is None:
            return self.send_error_for(path, OAuthError(404, "not_found", "no such endpoint"))
        handler = methods.get(self.command)
        if handler is None:
            return self.send_error_for(path, OAuthError(405, "invalid_request",
                                                        "method not allowed"))
        try:
            handler(self, query, form)
        except OAuthError as err:
            self.send_error_for(path, err)

    # --- discovery and keys ----------------------------------------------------------------

    def handle_discovery(self, query, form):
        iss = self.issuer
        self.send_json(200, {
            "issuer": iss,
            "authorization_endpoint": iss + "/oauth/authorize",
            "token_endpoint": iss + "/oauth/token",
            "jwks_uri": iss + "/keys",
            "end_session_endpoint": iss + "/oidc/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "client_credentials"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "claims_supported": ["iss", "aud", "azp", "sub", "oid", "sid", "exp", "iat",
                                 "at_hash", "c_hash", "amr", "client_id", "email",
                                 "email_verified", "name", "given_name", "family_name",
                                 "nonce"],
        }, {"Cache-Control": "public, max-age=3600"})

    def handle_jwks(self, query, form):
        max_age = self.state.lifetimes["jwks_max_age"]
        self.send_body(200, self.state.keyring.jwks_body(), "application/json",
                       {"Cache-Control": "public, max-age=%d" % max_age})

    # --- authorization endpoint ------------------------------------------------------------

    def handle_authorize(self, query, form):
        params = single_values(query if self.command == "GET" else self.form_multi)
        client = self.state.client(params.get("client_id"))
        if client is None:
            return self.send_html(400, message_page(
                "Invalid request", "Unknown or missing client_id."))
        redirect_uri = params.get("redirect_uri")
        problem = redirect_uri_problem(redirect_uri, client)
        if problem:
            return self.send_html(400, message_page("Invalid redirect_uri", problem))
        state = params.get("state")
        problem = authorize_param_problem(params)
        if problem:
            return self.redirect(add_query(redirect_uri, error=problem[0],
                                           error_description=problem[1], state=state))
        self.sign_in(params, client, redirect_uri, state)

    def sign_in(self, params, client, redirect_uri, state):
        """Decide between a silent code, an error, an auto sign-in or the sign-in page."""
        prompts = set((params.get("prompt") or "").split())
        session = self.state.session_by_cookie(self.cookie(SESSION_COOKIE))
        if params.get("skidp_signin") == "1" and self.command == "POST":
            if params.get("action") == "deny":
                return self.redirect(add_query(redirect_uri, error="access_denied",
                                               error_description="the user cancelled sign-in",
                                               state=state))
            overrides = self.sign_in_overrides(params, typed=True)
            return self.finish_sign_in(params, client, redirect_uri, state, None, overrides)
        if "none" in prompts:
            if session is None:
                return self.redirect(add_query(redirect_uri, error="login_required",
                                               error_description="no active session",
                                               state=state))
            return self.finish_sign_in(params, client, redirect_uri, state, session)
        if session is not None and not prompts & SIGN_IN_ACTIVE_PROMPTS:
            return self.finish_sign_in(params, client, redirect_uri, state, session)
        if self.state.auto_login:
            overrides = self.sign_in_overrides(params, typed=False)
            return self.finish_sign_in(params, client, redirect_uri, state, None, overrides)
        user = self.state.user
        self.send_html(200, signin_page(params, params.get("login_hint") or user["email"],
                                        user["name"]))

    @staticmethod
    def sign_in_overrides(params, typed):
        """What this sign-in changes about the test user. In auto mode the simulated user
        accepts the page as prefilled, so login_hint becomes the email there too."""
        overrides = {}
        email = params.get("email") if typed else None
        email = email or params.get("login_hint")
        if email:
            overrides["email"] = email
        if typed and params.get("name"):
            overrides["name"] = params["name"]
        if params.get("organization_id"):
            overrides["oid"] = params["organization_id"]
        if params.get("connection_id"):
            overrides["connection_id"] = params["connection_id"]
        return overrides

    def finish_sign_in(self, params, client, redirect_uri, state, session, overrides=None):
        headers = {}
        if session is None:
            session = self.state.start_session(overrides or {})
            headers["Set-Cookie"] = "%s=%s; Path=/; HttpOnly; SameSite=Lax" % (
                SESSION_COOKIE, session.cookie)
        code = self.state.issue_code({
            "client_id": client["client_id"], "redirect_uri": redirect_uri,
            "scope": params.get("scope"), "nonce": params.get("nonce"),
            "code_challenge": params.get("code_challenge"), "sid": session.sid})
        self.redirect(add_query(redirect_uri, code=code, state=state), headers)

    # --- token endpoint --------------------------------------------------------------------

    def handle_token(self, query, form):
        if self.content_type != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded")
        params = single_values(self.form_multi)
        if self.headers.get("Authorization"):
            raise OAuthError(401, "invalid_client",
                             "only client_secret_post is supported (no Authorization header)")
        client = self.state.authenticate_client(params)
        grant = params.get("grant_type")
        handler = GRANTS.get(grant)
        if handler is None:
            raise OAuthError(400, "unsupported_grant_type" if grant else "invalid_request",
                             "grant_type must be one of " + ", ".join(GRANTS))
        with self.state.lock:
            self.state.stats["grants"][grant] += 1
        response = handler(self, client, params)
        if response.get("refresh_token"):     # lets a test act as whoever learnt it
            self.log_entry["issued_refresh_token"] = response["refresh_token"]
        self.send_json(200, response, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def grant_code(self, client, params):
        rec, session = self.state.redeem_code(client["client_id"], params)
        return self.state.user_tokens(self.issuer, client, session, rec["scope"],
                                      nonce=rec["nonce"], code=params["code"])

    def grant_refresh(self, client, params):
        rec, session = self.state.use_refresh(client["client_id"], params.get("refresh_token"))
        response = self.state.user_tokens(self.issuer, client, session, rec["scope"])
        if not self.state.lifetimes["refresh_id_token"]:
            response.pop("id_token")
        return response

    def grant_client_credentials(self, client, params):
        return self.state.machine_token(self.issuer, client, params.get("scope") or "")

    # --- logout and session revocation -----------------------------------------------------

    def handle_logout(self, query, form):
        params = single_values(query if self.command == "GET" else self.form_multi)
        sids = set()
        client = None
        hint = params.get("id_token_hint")
        if hint:
            try:
                claims = verify_jwt(hint, self.state.keyring)
            except ValueError as exc:
                return self.send_html(400, message_page("Sign-out failed",
                                                        "Invalid id_token_hint: %s." % exc))
            sids.add(claims.get("sid"))
            client = self.state.client(claims.get("client_id") or claims.get("azp"))
        target = params.get("post_logout_redirect_uri")
        if target:
            problem = redirect_uri_problem(target, client, allow_query=True)
            if problem:
                problem = problem.replace("redirect_uri", "post_logout_redirect_uri")
                return self.send_html(400, message_page("Sign-out failed", problem))
        session = self.state.by_cookie.get(self.cookie(SESSION_COOKIE) or "")
        if session is not None:
            sids.add(session.sid)
        self.state.end_sessions(sids)
        headers = {"Set-Cookie": "%s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0" % SESSION_COOKIE}
        if target:
            return self.redirect(add_query(target, state=params.get("state")), headers)
        self.send_html(200, message_page("Signed out", "You have been signed out."), headers)

    def handle_session_revoke(self, query, form):
        sid = SESSION_REVOKE_RE.match(urllib.parse.urlsplit(self.path).path).group(1)
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self.send_json(401, {"code": 16, "message": "missing bearer token"})
        try:
            self.state.verify_machine_token(token.strip())
        except OAuthError as err:
            return self.send_json(401, {"code": 16, "message": err.description})
        session = self.state.sessions.get(sid)
        if session is None:
            return self.send_json(404, {"code": 5, "message": "session not found"})
        self.state.end_sessions([sid])
        revoked_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.send_json(200, {"session_id": sid,
                             "user_id": self.state.claims_for(session)["sub"],
                             "revoked_at": revoked_at, "status": "revoked"})

    # --- test controls ---------------------------------------------------------------------

    def handle_control(self, path):
        name = path[len("/_control/"):]
        spec = CONTROLS.get(name)
        if spec is None:
            return self.send_json(404, {"error": "unknown control " + name})
        method, func = spec
        if self.command != method:
            self.close_connection = True
            return self.send_json(405, {"error": "use " + method})
        try:
            payload = self.control_payload()
            result = func(self, payload)
        except OAuthError as err:
            return self.send_json(err.status, {"error": err.error,
                                               "error_description": err.description})
        except (ValueError, TypeError, KeyError) as exc:
            return self.send_json(400, {"error": "invalid_request",
                                        "error_description": "bad control payload: %s" % exc})
        if result is not None:
            self.send_json(200, result)

    def control_payload(self):
        text = self.read_body()       # always drained, to keep the connection in sync
        if self.command != "POST" or not text.strip():
            return {}
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise OAuthError(400, "invalid_request", "body is not JSON") from exc
        if not isinstance(payload, dict):
            raise OAuthError(400, "invalid_request", "body must be a JSON object")
        return payload


def endpoint_name(path):
    """Stats key: the route template, so /api/v1/sessions/X/revoke counts as one endpoint."""
    if path in ROUTES:
        return path
    if SESSION_REVOKE_RE.match(path):
        return "/api/v1/sessions/{sid}/revoke"
    return "other"


ROUTES = {
    "/.well-known/openid-configuration": {"GET": Handler.handle_discovery},
    "/keys": {"GET": Handler.handle_jwks},
    "/oauth/authorize": {"GET": Handler.handle_authorize, "POST": Handler.handle_authorize},
    "/oauth/token": {"POST": Handler.handle_token},
    "/oidc/logout": {"GET": Handler.handle_logout, "POST": Handler.handle_logout},
}
BROWSER_PATHS = {"/oauth/authorize", "/oidc/logout"}
GRANTS = {
    "authorization_code": Handler.grant_code,
    "refresh_token": Handler.grant_refresh,
    "client_credentials": Handler.grant_client_credentials,
}


# --- control implementations (payload in, JSON-able result out) ------------------------------

def ctl_user(h, payload):
    return h.state.update_user(payload)


def ctl_client(h, payload):
    h.state.add_client(payload)
    return {"ok": True, "client_id": payload["client_id"]}


def ctl_shape(h, payload):
    return h.state.set_shapes(payload)


def ctl_rotate(h, payload):
    kid = h.state.keyring.rotate(keep_old=bool(payload.get("keep_old", True)))
    return dict(h.state.keyring.summary(), kid=kid)


def ctl_keys(h, payload):
    return h.state.keyring.summary()


def ctl_lifetimes(h, payload):
    with h.state.lock:
        for name, value in payload.items():
            if name not in DEFAULT_LIFETIMES:
                raise ValueError("unknown lifetime " + name)
            if value is not None:
                h.state.lifetimes[name] = int(value)
        return dict(h.state.lifetimes)


def ctl_fault(h, payload):
    mode = str(payload.get("mode", "none"))
    if mode not in FAULT_MODES:
        raise ValueError("mode must be one of " + ", ".join(sorted(FAULT_MODES)))
    count = payload.get("count")
    if count is not None and int(count) <= 0:
        mode = "none"
    fault = Fault(mode, payload.get("delay") or 0, payload.get("paths"),
                  int(count) if count is not None else None)
    with h.state.lock:
        h.state.fault = fault
    return fault.describe()


def ctl_auto_login(h, payload):
    h.state.auto_login = bool(payload.get("on", True))
    return {"auto_login": h.state.auto_login}


def ctl_log(h, payload):
    with h.state.lock:
        return list(h.state.log)


def ctl_log_clear(h, payload):
    with h.state.lock:
        h.state.log.clear()
    return {"ok": True}


def ctl_mint(h, payload):
    """An arbitrary token. base=access|id|machine starts from a normal token of the test user;
    shape=NAME from a documented shape as printed (tests/fixtures/scalekit-docs); nulls: names
    of claims set to JSON null
    (fresh exp, this listener's issuer); claims overlay it, a null claim removes one."""
    claims = {}
    base = payload.get("base")
    if base:
        claims = base_claims(h, base)
    elif payload.get("shape"):          # as the docs print it: fresh times, our issuer
        shape = load_shape(payload["shape"])
        claims = fresh_shape(shape, h.issuer, now(), h.state.lifetimes[shape["kind"]])
    for name, value in (payload.get("claims") or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    for name in payload.get("nulls") or []:      # a claim that is JSON null
        claims[name] = None
    token = h.state.sign(claims, payload.get("header"), payload.get("kid"),
                         payload.get("sign") or "current")
    return {"token": token}


def base_claims(h, base):
    state = h.state
    client = state.client(state.initial["client_id"])
    if base == "machine":
        token = state.machine_token(h.issuer, client, "")["access_token"]
        return verify_jwt(token, state.keyring)
    if base not in ("access", "id"):
        raise ValueError("base must be access, id or machine")
    session = Session({})       # not registered: only its fresh sid is used
    response = state.user_tokens(h.issuer, client, session, "openid profile email")
    return verify_jwt(response["access_token" if base == "access" else "id_token"],
                      state.keyring)


SIGNIN_SCOPE = "openid profile email offline_access"     # mod_scalekit's default ScalekitScopes


def ctl_mint_sessions(h, payload):
    """Token pairs (access, ID) of `count` distinct users (sub PREFIX000000, ...), each from a
    sign-in of its own, made by the same code as the code grant's answer (the test user's
    claims, the current key, the lifetimes in force, the scope mod_scalekit asks for) without
    the browser round trips: for benchmarks of many sessions. Their refresh tokens are not
    handed out; the sign-ins are not remembered."""
    count = int(payload.get("count") or 0)
    start = int(payload.get("start") or 0)
    prefix = str(payload.get("prefix") or "usr_mint")
    if not 0 < count <= 5000 or start < 0:
        raise ValueError("count: 1-5000 a call")
    state = h.state
    client = state.client(state.initial["client_id"])
    pairs = []
    for i in range(start, start + count):
        session = Session({"sub": "%s%06d" % (prefix, i), "email": "%s%06d@bench.example"
                           % (prefix, i), "name": "Bench User %d" % i,
                           "xuid": "ext_%s%06d" % (prefix, i)})
        answer = state.user_tokens(h.issuer, client, session, SIGNIN_SCOPE)
        pairs.append([answer["access_token"], answer["id_token"]])
    return {"sessions": pairs}


def ctl_idp_initiated(h, payload):
    client_id = payload.get("client_id") or h.state.initial["client_id"]
    t = now()
    claims = {"iss": h.issuer, "aud": [client_id], "iat": t, "nbf": t, "exp": t + 300}
    for name in ("connection_id", "organization_id", "login_hint", "relay_state"):
        if payload.get(name):
            claims[name] = payload[name]
    return {"token": h.state.sign(claims)}


def ctl_stats(h, payload):
    with h.state.lock:
        stats = {name: dict(counter) for name, counter in h.state.stats.items()}
        stats["sessions"] = {"total": len(h.state.sessions),
                             "active": sum(s.active for s in h.state.sessions.values())}
        stats["uptime"] = round(time.time() - h.state.started, 3)
    return stats


def ctl_sessions(h, payload):
    with h.state.lock:
        return [{"sid": s.sid, "active": s.active, "created": s.created,
                 "overrides": s.overrides} for s in h.state.sessions.values()]


def ctl_reset(h, payload):
    h.state.reset()
    return {"ok": True}


def ctl_shutdown(h, payload):
    h.close_connection = True
    h.send_json(200, {"ok": True, "message": "going away"})
    h.wfile.flush()
    h.server.stop_event.set()


CONTROLS = {
    "user": ("POST", ctl_user),
    "client": ("POST", ctl_client),
    "shape": ("POST", ctl_shape),
    "rotate": ("POST", ctl_rotate),
    "keys": ("GET", ctl_keys),
    "lifetimes": ("POST", ctl_lifetimes),
    "fault": ("POST", ctl_fault),
    "auto_login": ("POST", ctl_auto_login),
    "log": ("GET", ctl_log),
    "log/clear": ("POST", ctl_log_clear),
    "mint": ("POST", ctl_mint),
    "mint_sessions": ("POST", ctl_mint_sessions),
    "idp_initiated": ("POST", ctl_idp_initiated),
    "stats": ("GET", ctl_stats),
    "sessions": ("GET", ctl_sessions),
    "reset": ("POST", ctl_reset),
    "shutdown": ("POST", ctl_shutdown),
}


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

class IdPServer(http.server.ThreadingHTTPServer):
    """One listener. Bound at construction (so a taken port fails before any key is made);
    `state` is attached before serving starts."""
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address, listener, stop_event, quiet):
        super().__init__(address, Handler)
        self.listener = listener
        self.stop_event = stop_event
        self.quiet = quiet
        self.state = None
        host, port = self.server_address[:2]
        self.base_url = "%s://%s:%d" % (listener, host, port)

    def server_bind(self):
        # HTTPServer.server_bind would resolve our name (getfqdn), which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if not self.quiet:
            super().handle_error(request, client_address)


class TLSIdPServer(IdPServer):
    """TLS handshakes run in the per-connection thread, so a slow client never blocks accept."""

    ssl_context = None

    def use_certificate(self, cert, key):
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(cert, key)

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Local Scalekit-compatible identity provider")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="http port (0: any free port)")
    ap.add_argument("--https-port", type=int, default=0,
                    help="https port (0: any free port, -1: no https listener)")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--client-id", default="skc_demo")
    ap.add_argument("--client-secret", default="demo-secret")
    ap.add_argument("--auto-login", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no per-request lines on stderr")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    servers = [IdPServer((args.host, args.port), "http", stop, args.quiet)]
    if args.https_port >= 0:
        servers.append(TLSIdPServer((args.host, args.https_port), "https", stop, args.quiet))

    os.makedirs(args.state_dir, exist_ok=True)
    os.chmod(args.state_dir, 0o755)        # Apache children (www-data) read ca.pem in here
    keyring = KeyRing(os.path.join(args.state_dir, "keys.json"))
    state = IdPState(keyring, args.client_id, args.client_secret, args.auto_login)
    state.issuers = [s.base_url for s in servers]
    ca_path = None
    if len(servers) > 1:
        ca_path, cert, key = ensure_tls_files(args.state_dir)
        servers[1].use_certificate(cert, key)

    for server in servers:
        server.state = state
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="serve-" + server.listener).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    print(json.dumps({"http": servers[0].base_url,
                      "https": servers[1].base_url if len(servers) > 1 else None,
                      "ca": ca_path, "pid": os.getpid()}), flush=True)

    while not stop.wait(0.1):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
