# SPDX-License-Identifier: Apache-2.0
"""Scalekit as documented: every token shape Scalekit's developer documentation prints
(tests/fixtures/scalekit-docs, README.md there names the pages) run through the real module, as
a bearer token or as a sign-in session, each row saying what the module must do with it.

The printed claims are used as printed, with fresh times, the local IdP's issuer and its keys
(idp.mint(shape=...)); a row that changes a claim says so. Sessions come from a real sign-in
against the local IdP issuing tokens of the documented shapes (idp.set_shape(...)).
"""
import time
import base64
import json
import pytest
import requests

from httpd import DEFAULT_LOCATIONS
from test_signin import signin

M2M_CLIENT = "m2morg_69038819013296423"          # the M2M quickstart's API client
API_AUDIENCE = "https://api.your-app.com"         # session-token-claims.mdx's API audience
PRINTED_CLIENT = "skc_58327482062864390"          # complete-login.mdx's ID token names this client

# One process: the validation cache is per process, and the rows that move a cached token from
# one location to another must meet the same cache.
ONE_PROCESS = ("StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMaxRequestWorkers 8\n"
               "MinSpareThreads 1\nMaxSpareThreads 8\n")

BEARER = "AuthType Scalekit\nScalekitBearer On\n"
MACHINES = "ScalekitMachineClients %s %s\n" % (M2M_CLIENT, PRINTED_CLIENT)
PATHS = {
    # path: what the location adds to AuthType Scalekit
    "/plain": BEARER + "Require valid-user\n",
    "/m2m": BEARER + MACHINES + "Require valid-user\n",
    "/m2m/off": "ScalekitMachineClients none\n",                   # inherits the rest of /m2m
    "/deploy": BEARER + MACHINES + "Require scalekit-scope deploy:applications\n",
    "/admin": BEARER + MACHINES + "Require scalekit-scope admin:all\n",
    "/env": BEARER + MACHINES + "Require scalekit-claim environment production\n",
    "/plan": BEARER + "Require scalekit-claim plan enterprise\n",
    "/xuid": BEARER + "Require scalekit-claim xuid ext_usr_456\n",
    "/forged": BEARER + "Require valid-user\n",
    # static files (none there): the 404 goes by internal redirect to /plain, which lists no one
    "/files": BEARER + MACHINES + "Require valid-user\nErrorDocument 404 /plain\n",
}


def server(idp, httpd_factory):
    conf = ("ScalekitAudience %s\n" % API_AUDIENCE + ONE_PROCESS +
            "SetEnvIf X-Client-Id (.+) SCALEKIT_CLIENT_ID=$1\n")
    locations = DEFAULT_LOCATIONS
    for path, body in PATHS.items():
        if path.count("/") == 1 and path != "/files":
            locations += "ScriptAlias %s @ROOT@/cgi-bin/whoami\n" % path
        locations += "<Location %s>\n%s</Location>\n" % (path, body)
    locations += "<Location /dashboard>\nScalekitMachineClients %s\n</Location>\n" % M2M_CLIENT
    locations += "<Location /sk-status>\nSetHandler scalekit-status\n</Location>\n"
    return httpd_factory(idp=idp, extra_conf=conf, locations=locations, mpm="event")


def get(h, path, token=None, cookies=None, **headers):
    headers.setdefault("Accept", "application/json")
    if token:
        headers["Authorization"] = "Bearer " + token
    return requests.get(h.url + path, headers=headers, cookies=cookies, allow_redirects=False)


# ---------------------------------------------------------------------------------------------
# Bearer tokens: (row, shape, claims changed, path, status, environment or why)
# ---------------------------------------------------------------------------------------------

M2M_ENV = {"REMOTE_USER": M2M_CLIENT, "SCALEKIT_SUB": M2M_CLIENT, "SCALEKIT_CLIENT_ID": M2M_CLIENT,
           "SCALEKIT_ORGANIZATION_ID": "org_59615193906282635",
           "SCALEKIT_SCOPE": "deploy:applications read:deployments"}
USER_ENV = {"REMOTE_USER": "usr_8967800122X995270", "SCALEKIT_ORGANIZATION_ID": "org_89678001X21929734",
            "SCALEKIT_SESSION_ID": "ses_90928729571723X24", "SCALEKIT_ROLES": "admin",
            "SCALEKIT_PERMISSIONS": "workspace_data:write,workspace_data:read",
            "SCALEKIT_SCOPE": "openid profile email"}
IN_FUTURE = 4102444800                            # 2100-01-01

BEARER_ROWS = [
    # --- M2M (client_credentials) token as the quickstart prints it: no aud ---
    ("m2m, no machine clients here", "m2m-access-token", {}, "/plain", 401,
     "no aud and this location lists no machine clients (as before ScalekitMachineClients)"),
    ("m2m, listed client", "m2m-access-token", {}, "/m2m", 200, M2M_ENV),
    ("m2m, listed, has the scope", "m2m-access-token", {}, "/deploy", 200, M2M_ENV),
    ("m2m, listed, lacks the scope", "m2m-access-token", {}, "/admin", 403,
     "scopes hold no admin:all: authorization refuses a known client"),
    ("m2m, sub-location says none", "m2m-access-token", {}, "/m2m/off", 401,
     "ScalekitMachineClients none in the sub-location"),
    ("m2m, unlisted client", "m2m-access-token", {"client_id": "m2morg_1", "sub": "m2morg_1"},
     "/m2m", 401, "m2morg_1 is not listed"),
    ("m2m, no client_id", "m2m-access-token", {"client_id": None}, "/m2m", 401,
     "no client_id: nothing to find in the list"),
    ("m2m, expired", "m2m-access-token", {"exp": 1745305340}, "/m2m", 401, "exp as printed: past"),
    ("m2m, not yet valid", "m2m-access-token", {"nbf": IN_FUTURE}, "/m2m", 401, "nbf in the future"),
    ("m2m, iat in the future", "m2m-access-token", {"iat": IN_FUTURE}, "/m2m", 401, "iat in the future"),
    ("m2m, no exp", "m2m-access-token", {"exp": None}, "/m2m", 401, "access tokens need exp"),
    ("m2m, issuer as printed", "m2m-access-token", {"iss": "<SCALEKIT_ENVIRONMENT_URL>"}, "/m2m", 401,
     "iss is not this environment"),
    ("m2m, with nonce", "m2m-access-token", {"nonce": "n"}, "/m2m", 401, "an ID token's mark"),
    ("m2m, with at_hash", "m2m-access-token", {"at_hash": "x"}, "/m2m", 401, "an ID token's mark"),
    ("m2m, with azp", "m2m-access-token", {"azp": M2M_CLIENT}, "/m2m", 401,
     "azp without aud: an ID token's mark"),
    ("m2m, no sub", "m2m-access-token", {"sub": None}, "/m2m", 401, "a token of no one"),
    ("m2m, aud of another API", "m2m-access-token", {"aud": ["https://other.example"]}, "/m2m", 401,
     "an aud is checked as ever, listed client or not"),
    ("m2m, empty aud", "m2m-access-token", {"aud": []}, "/m2m", 401, "an empty aud is not no aud"),
    ("m2m, null aud", "m2m-access-token", {"_null": ["aud"]}, "/m2m", 401,
     "aud: null is not no aud"),
    ("m2m, registered audience", "m2m-access-token", {"aud": [API_AUDIENCE]}, "/plain", 200,
     dict(M2M_ENV, SCALEKIT_CLIENT_ID=None)),
    ("m2m, registered audience, listed", "m2m-access-token", {"aud": [API_AUDIENCE]}, "/m2m", 200, M2M_ENV),
    # --- user access token as complete-login.mdx prints it ---
    ("access token, aud as printed", "access-token", {}, "/plain", 401,
     "aud names prd_skc_7848964512134X699, another client"),
    ("access token, our client", "access-token", {"aud": ["skc_demo"]}, "/plain", 200,
     dict(USER_ENV, SCALEKIT_CLIENT_ID=None, SCALEKIT_EMAIL=None, SCALEKIT_NAME=None)),
    ("access token, xuid rule", "access-token", {"aud": ["skc_demo"]}, "/xuid", 200, USER_ENV),
    ("access token, no aud, its client listed", "access-token", {"aud": None,
     "client_id": PRINTED_CLIENT}, "/m2m", 200, dict(USER_ENV, SCALEKIT_CLIENT_ID=PRINTED_CLIENT)),
    # --- access token with an API audience and a custom claim (session-token-claims.mdx) ---
    ("api audience + plan", "access-token-api-audience", {}, "/plan", 200,
     {"REMOTE_USER": "usr_96194455173923084", "SCALEKIT_PERMISSIONS": "users:read,users:write"}),
    ("api audience, other plan", "access-token-api-audience", {"plan": "free"}, "/plan", 403,
     "Require scalekit-claim plan enterprise"),
    # --- ID token as complete-login.mdx prints it, offered as an access token ---
    ("id token", "id-token", {"aud": ["skc_demo"]}, "/plain", 401,
     "at_hash/c_hash: an ID token is not an access token"),
    ("id token as on refresh", "id-token", {"aud": ["skc_demo"], "c_hash": None}, "/plain", 401,
     "no nonce or c_hash, still at_hash"),
    ("id token without aud, client listed", "id-token", {"aud": None}, "/m2m", 401,
     "its client (skc_5832...) is listed, but it has an ID token's marks"),
    ("id token without aud or hashes, client listed", "id-token",
     {"aud": None, "at_hash": None, "c_hash": None}, "/m2m", 401, "azp: an ID token's mark"),
]


def mint(idp, shape, changes):
    """The shape as printed (fresh times, our issuer and keys) with the row's changes: None
    removes a claim, "_null" names one set to JSON null."""
    changes = dict(changes)
    nulls = changes.pop("_null", None)
    return idp.mint(changes, shape=shape, nulls=nulls)


@pytest.fixture
def h(idp, httpd_factory):
    return server(idp, httpd_factory)


@pytest.mark.parametrize("row", BEARER_ROWS, ids=[r[0] for r in BEARER_ROWS])
def test_bearer_shapes(idp, h, row):
    name, shape, changes, path, status, want = row
    r = get(h, path, mint(idp, shape, changes))
    assert r.status_code == status, "%s: %s\n%s" % (name, want, h.error_log()[-1500:])
    if status == 401:
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    if status == 200:
        seen = r.json()
        for var, value in want.items():
            assert seen.get(var) == value, (name, var, seen)


def test_m2m_without_aud_refused_by_default(idp, httpd_factory):
    """Where no machine client is listed (any configuration written before
    ScalekitMachineClients), the quickstart's token, without aud, is refused with a 401."""
    locations = DEFAULT_LOCATIONS + "<Location /cgi-bin>\n" + BEARER + "</Location>\n"
    h = httpd_factory(idp=idp, locations=locations)
    idp.add_client(M2M_CLIENT, "m-secret")
    for token in (idp.client_credentials(M2M_CLIENT, "m-secret"), mint(idp, "m2m-access-token", {})):
        r = get(h, "/cgi-bin/whoami", token)
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "refused: bad-audience" in h.error_log()


def test_m2m_from_the_token_endpoint(idp, h):
    """Tokens as the IdP issues them to registered API clients: without an audience no aud
    (accepted where listed only), with custom claims beside the rest."""
    idp.add_client(M2M_CLIENT, "m-secret", custom_claims=[{"key": "environment", "value": "production"}])
    idp.add_client("m2morg_api", "a-secret", audience=[API_AUDIENCE])
    token = idp.client_credentials(M2M_CLIENT, "m-secret", scope="deploy:applications")
    assert get(h, "/plain", token).status_code == 401
    r = get(h, "/deploy", token)
    assert r.status_code == 200 and r.json()["SCALEKIT_SCOPE"] == "deploy:applications"
    assert get(h, "/env", token).status_code == 200                 # the client's custom claim
    assert get(h, "/admin", token).status_code == 403
    other = idp.client_credentials("m2morg_api", "a-secret")        # aud: the registered audience
    r = get(h, "/plain", other)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "m2morg_api"
    assert get(h, "/env", other).status_code == 403                 # no custom claim of its own


def test_audience_decision_is_per_request_not_cached(idp, h):
    """An aud-less token validated (and cached) for a location that lists its client is not
    then accepted where it is not listed, nor as a sign-in cookie, nor at IdP-initiated login."""
    token = mint(idp, "m2m-access-token", {})
    hits = lambda: requests.get(h.url + "/sk-status?json").json()["this_process"]["cache_hits"]
    before = hits()
    for _ in range(3):
        assert get(h, "/m2m", token).status_code == 200
        assert get(h, "/plain", token).status_code == 401
        assert get(h, "/m2m/off", token).status_code == 401
        assert get(h, "/dashboard/", cookies={"sk-access-token": token}).status_code == 401
    assert get(h, "/m2m", token).status_code == 200
    assert hits() - before >= 12                                     # the cache did answer
    r = requests.get(h.url + "/api/auth/login", params={"idp_initiated_login": token},
                     allow_redirects=False)
    assert r.status_code == 400
    assert "no aud, and its client m2morg_1 is not in ScalekitMachineClients" not in h.error_log()
    get(h, "/m2m", mint(idp, "m2m-access-token", {"client_id": "m2morg_1", "sub": "m2morg_1"}))
    assert "no aud, and its client m2morg_1 is not in ScalekitMachineClients" in h.error_log()


def test_internal_redirect_decides_afresh(idp, h):
    """A request accepted at a location that lists its client keeps its session through an
    internal redirect or subrequest only where the new location accepts it too."""
    m2m = mint(idp, "m2m-access-token", {})
    r = get(h, "/files/missing.txt", m2m)
    assert r.status_code == 404 and M2M_CLIENT not in r.text, r.text[:300]
    user = idp.mint({"aud": ["skc_demo"]}, shape="access-token")
    r = get(h, "/files/missing.txt", user)                 # a token with aud: as ever
    assert r.status_code == 404 and r.json()["REMOTE_USER"] == "usr_8967800122X995270"


def test_client_id_variable_cannot_be_forged(idp, h):
    """SCALEKIT_CLIENT_ID comes from a listed client's token, never from the request."""
    user = idp.mint({"aud": ["skc_demo"]}, shape="access-token")
    r = get(h, "/forged", user, **{"X-Client-Id": "m2morg_admin"})
    assert r.status_code == 200 and "SCALEKIT_CLIENT_ID" not in r.json()
    m2m = mint(idp, "m2m-access-token", {})
    r = get(h, "/m2m", m2m, **{"X-Client-Id": "m2morg_admin"})
    assert r.status_code == 200 and r.json()["SCALEKIT_CLIENT_ID"] == M2M_CLIENT


# ---------------------------------------------------------------------------------------------
# Sign-in sessions with the documented shapes
# ---------------------------------------------------------------------------------------------

def test_session_with_documented_id_and_access_tokens(idp, h, browser_session):
    """complete-login.mdx's ID token and access token, issued by a real sign-in (sub and sid the
    session's, the client ours), then a refresh whose ID token has no nonce and no c_hash."""
    idp.set_shape(access="access-token", id="id-token")
    s = browser_session()
    signin(h, s)
    seen = s.get(h.url + "/cgi-bin/whoami").json()
    assert seen["REMOTE_USER"] == "usr_demo001"
    assert seen["SCALEKIT_EMAIL"] == "john.doe@example.com"         # the ID token's profile
    assert seen["SCALEKIT_NAME"] == "John Doe"
    assert seen["SCALEKIT_ORGANIZATION_ID"] == "org_89678001X21929734"   # the access token's
    assert seen["SCALEKIT_PERMISSIONS"] == "workspace_data:write,workspace_data:read"
    assert seen["SCALEKIT_SCOPE"] == "openid profile email"
    assert "SCALEKIT_CLIENT_ID" not in seen
    sid = seen["SCALEKIT_SESSION_ID"]
    for c in list(s.cookies):                       # the same access token, expired (past the
        if c.name == "sk-access-token":             # leeway): the module must refresh it
            claims = json.loads(base64.urlsafe_b64decode(c.value.split(".")[1] + "=="))
            now = int(time.time())
            claims.update(exp=now - 120, iat=now - 420, nbf=now - 420)
            c.value = idp.mint(claims)
    r = s.get(h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 200, h.error_log()[-1500:]
    assert r.json()["SCALEKIT_EMAIL"] == "john.doe@example.com" and r.json()["SCALEKIT_SESSION_ID"] == sid
    refreshes = [e for e in idp.log() if e["path"] == "/oauth/token"
                 and e["form"].get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200


def test_session_with_api_audience_and_custom_claim(idp, h, browser_session):
    """session-token-claims.mdx: a session whose access token names the API (accepted with
    ScalekitAudience) and carries the custom claim plan."""
    idp.set_shape(access="access-token-api-audience", id="id-token")
    s = browser_session()
    signin(h, s, "/dashboard/")
    assert s.get(h.url + "/api/auth/session").json()["access_token_claims"]["plan"] == "enterprise"
    r = s.get(h.url + "/cgi-bin/whoami")
    assert r.status_code == 200 and r.json()["SCALEKIT_PERMISSIONS"] == "users:read,users:write"


def test_session_never_takes_an_audless_token(idp, h, browser_session):
    """Sign-in sessions refuse an access token without aud, even where its client is listed
    (/dashboard lists the M2M client): Scalekit's user tokens always carry one."""
    idp.set_shape(access="m2m-access-token")        # an IdP gone wrong: user tokens without aud
    s = browser_session()
    r = s.get(h.url + "/api/auth/login", params={"return_to": "/dashboard/"})
    assert r.status_code == 502 and "/api/auth/callback" in r.url      # the IdP's answer is bad
    assert "refused: bad-audience" in h.error_log()
    assert not s.cookies.get("sk-access-token")
