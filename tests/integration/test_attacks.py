"""Attacks on the module's hooks from a security review: each test is a regression for a defect
found and fixed (it fails on the code before the fix), through a real httpd and the local IdP.

The shared-memory plant writes httpd's shmcb segment through /proc/PID/mem (the tests run as
root), as code running inside a child (an embedded interpreter, a compromised module) could."""
import base64
import hashlib
import json
import re
import time

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

API = {"Accept": "application/json"}


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def whoami(h, cookies=None, headers=None, path="/cgi-bin/whoami"):
    return requests.get(h.url + path, cookies=cookies or {}, headers=dict(API, **(headers or {})),
                        allow_redirects=False, timeout=30)


# ------------------------------------------------------------------------------------------------
# Writing httpd's shared memory
# ------------------------------------------------------------------------------------------------

def shared_mappings(pid):
    """(start, end) of the process's shared writable mappings (shmcb segments among them)."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if fields[1].startswith("rw") and fields[1][3] == "s":
                start, end = (int(x, 16) for x in fields[0].split("-"))
                out.append((start, end))
    return out


def find_in_shared(pid, needle):
    """Addresses of needle in the process's shared mappings."""
    hits = []
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for start, end in shared_mappings(pid):
            mem.seek(start)
            data = mem.read(end - start)
            hits += [start + m.start() for m in re.finditer(re.escape(needle), data)]
    return hits


def read_mem(pid, addr, n):
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        mem.seek(addr)
        return mem.read(n)


def write_mem(pid, addr, data):
    with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
        mem.seek(addr)
        mem.write(data)


# ------------------------------------------------------------------------------------------------
# The last good JWKS shared by the children: sealed, so a planted key set is no key set
# ------------------------------------------------------------------------------------------------

def attacker_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.public_key().public_numbers()

    def b64int(v):
        return b64u(v.to_bytes((v.bit_length() + 7) // 8, "big"))
    jwk = {"kty": "RSA", "kid": "planted", "use": "sig", "alg": "RS256",
           "n": b64int(nums.n), "e": b64int(nums.e)}
    return key, jwk


def sign_rs256(key, claims, kid="planted"):
    head = b64u(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    body = b64u(json.dumps(claims).encode())
    sig = key.sign((head + "." + body).encode(), padding.PKCS1v15(), hashes.SHA256())
    return head + "." + body + "." + b64u(sig)


def jwks_record_key(idp):
    """Where httpd_shared.c keeps the JWKS copy: before the fix under the URL alone, after it
    under the URL and the client. Either way base64url(SHA-256(...)) + ":k"."""
    return [(b64u(hashlib.sha256(v.encode()).digest()) + ":k").encode()
            for v in (idp.url + "/keys", idp.url + "/keys " + idp.client_id)]


def test_planted_jwks_in_shared_memory_is_not_trusted(idp, httpd_factory):
    """Whoever can write the shmcb segment overwrites the shared JWKS copy with a key set of
    their own (fetched "now"), then presents a token signed by their key under a new kid: the
    process meeting the unknown kid takes a copy fetched within ScalekitJWKSRefreshInterval
    instead of calling the IdP. The copy is sealed and bound to its key: the plant does not
    open, is logged, and the key set comes from the IdP, where the kid is unknown: 401."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitJWKSRefreshInterval 1\n", locations=loc(
        "/cgi-bin", "AuthType Scalekit\nScalekitBearer On\nRequire valid-user\n"))
    good = idp.mint({}, base="access")
    assert whoami(h, headers={"Authorization": "Bearer " + good}).status_code == 200
    parent = h.proc.pid
    hits = []
    for _ in range(50):                               # the copy is shared right after the fetch
        hits = [(k, a) for k in jwks_record_key(idp) for a in find_in_shared(parent, k)]
        if hits:
            break
        time.sleep(0.1)
    assert len(hits) == 1, hits
    record_key, addr = hits[0]
    value_at = addr + len(record_key)                 # shmcb keeps the value right after the key
    jwks_len = len(requests.get(idp.url + "/keys").content)
    head = read_mem(parent, value_at, 16)
    if re.match(rb"\d{10}\n", head):                  # plain "<fetched>\n<document>"
        room = 11 + jwks_len
    else:                                             # sealed: base64url(iv | text | tag)
        assert re.match(rb"[A-Za-z0-9_-]{16}", head), head
        n = 12 + 11 + jwks_len + 16
        room = n // 3 * 4 + (n % 3 + 1 if n % 3 else 0)
    key, jwk = attacker_key()
    time.sleep(1.2)                                   # an unknown kid may look for keys again
    doc = json.dumps({"keys": [jwk]}).encode()
    plant = b"%d\n" % int(time.time()) + doc
    assert len(plant) <= room, (len(plant), room)
    write_mem(parent, value_at, plant + b" " * (room - len(plant)))
    now = int(time.time())
    forged = sign_rs256(key, {"iss": idp.url, "aud": [idp.client_id], "sub": "usr_attacker",
                              "iat": now, "nbf": now, "exp": now + 300, "client_id": idp.client_id})
    r = whoami(h, headers={"Authorization": "Bearer " + forged})
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert "usr_attacker" not in r.text
    assert "shared JWKS copy does not open" in h.error_log()
    # The IdP's keys still serve: the good token is accepted as before.
    assert whoami(h, headers={"Authorization": "Bearer " + good}).status_code == 200


# ------------------------------------------------------------------------------------------------
# ScalekitPassAccessToken: the backend's Authorization is only ever the module's, and only where
# the option is on
# ------------------------------------------------------------------------------------------------

ENVDUMP_CGI = r'''#!/usr/bin/python3
import json, os
print("Content-Type: application/json\n")
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(("HTTP_", "SCALEKIT_"))
                  or k == "REMOTE_USER"}))
'''
PROTECT = " AuthType Scalekit\n Require valid-user\n"
PASS = " ScalekitPassAccessToken On\n"


def pass_token_server(idp, httpd_factory):
    """Proxied to a backend (second port) whose CGI sees Authorization (CGIPassAuth On):
    /granted and /anyip pass the token but let a request in without a user; /app passes it to a
    backend whose 404 becomes an ErrorDocument served by /off, which does not pass it."""
    backend = "http://127.0.0.1:@PORT1@/backend"
    locations = (
        loc("/api/auth", " SetHandler scalekit\n") +
        "".join("ProxyPass /%s %s\n" % (p, backend) for p in ("granted", "anyip", "off")) +
        "ProxyPass /app http://127.0.0.1:@PORT1@/missing\n" +
        loc("/granted", " AuthType Scalekit\n Require all granted\n" + PASS) +
        loc("/anyip", " AuthType Scalekit\n <RequireAny>\n  Require ip 127.0.0.1\n"
            "  Require valid-user\n </RequireAny>\n" + PASS) +
        loc("/app", PROTECT + PASS + " ProxyErrorOverride On\n ErrorDocument 404 /off/missing\n") +
        loc("/off", " Require all granted\n") +
        "<VirtualHost 127.0.0.1:@PORT1@>\n ScriptAlias /backend @ROOT@/cgi-bin/envdump\n"
        " <Directory @ROOT@/cgi-bin>\n  CGIPassAuth On\n </Directory>\n</VirtualHost>\n")
    h = httpd_factory(idp=idp, locations=locations, proxy=True, extra_ports=1)
    cgi = h.root / "cgi-bin" / "envdump"
    cgi.write_text(ENVDUMP_CGI)
    cgi.chmod(0o755)
    return h


def test_client_authorization_never_reaches_a_pass_token_backend(idp, httpd_factory):
    """Where authorization lets a request in without a user (Require all granted, Require ip in
    a RequireAny), check_authn does not run: the client's own Authorization (a forged token,
    another user's) must not reach a backend told that Authorization is the module's."""
    h = pass_token_server(idp, httpd_factory)
    forged = idp.mint({"sub": "usr_victim"}, base="access", sign="bad")
    for path in ("/granted", "/anyip"):
        r = requests.get(h.url + path, headers={"Authorization": "Bearer " + forged}, timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert "HTTP_AUTHORIZATION" not in r.json(), (path, r.json())
    # A signed-in user's request there still carries the user's token? No check_authn ran, so
    # no user and no token: the backend sees no Authorization at all.


def test_token_passed_to_one_location_does_not_follow_an_error_document(idp, httpd_factory,
                                                                        browser_session):
    """/app passes the user's token; its 404 page is served by /off, which does not: the error
    page's backend must not receive the user's access token (an internal redirect shares the
    request's headers)."""
    from test_signin import signin
    h = pass_token_server(idp, httpd_factory)
    s = browser_session()
    signin(h, s, return_to="/off/x")
    token = s.cookies.get("sk-access-token")
    r = s.get(h.url + "/app", allow_redirects=False)
    assert r.status_code in (200, 404), (r.status_code, r.text[:300])   # the page's status
    assert "HTTP_ACCEPT" in r.text, r.text[:500]             # the backend served the page
    assert token not in r.text and "HTTP_AUTHORIZATION" not in r.text, r.text[:500]


# ------------------------------------------------------------------------------------------------
# ScalekitEnvVars: no claim passes for the machine client's variable
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("claim", ["client_id", "client-id", "Client.ID"])
def test_no_claim_may_become_scalekit_client_id(idp, module_path, claim):
    """SCALEKIT_CLIENT_ID names a client listed in ScalekitMachineClients and nothing else; a
    custom claim mapped onto it would hand every user token's client_id (the app's own client)
    to the application as if it were a listed machine client. Refused at apache2 -t."""
    from test_config import location_config_test
    rc, out = location_config_test(idp, module_path, "ScalekitEnvVars sub " + claim)
    assert rc != 0 and "would be SCALEKIT_CLIENT_ID" in out, out
    rc, out = location_config_test(idp, module_path, "ScalekitEnvVars sub client_name")
    assert rc == 0, out
