# SPDX-License-Identifier: Apache-2.0
"""What the application is handed beyond the fixed SCALEKIT_* set: any claim named in
ScalekitEnvVars (environment, and claim headers for a proxied application), and with
ScalekitPassAccessToken the session's access token as Authorization: Bearer."""
import re

import pytest
import requests

from test_config import location_config_test
from test_security import ENVDUMP_CGI, raw_request
from test_signin import endpoint_calls, expire_access_cookie, signin

CLAIMS = "plan seats ratio trial tags limits note nothing absent org.tier department given_name " \
         "email_verified amr xoid"
SPOOF = " SetEnvIf User-Agent . SCALEKIT_PLAN=spoofed SCALEKIT_ABSENT=spoofed SCALEKIT_SEATS=999\n"
PROTECT = " AuthType Scalekit\n Require valid-user\n"

ACCESS_EXTRA = {"plan": "enterprise", "seats": 25, "ratio": 1.5, "trial": False,
                "tags": ["beta", "eu", 3, True, {"k": "v"}], "limits": {"seats": 25, "sso": True},
                "note": "line1\r\nX-Injected: 1\x1b[31m", "nothing": None, "org.tier": "gold"}
# plan here too: the access token's value wins; department only here.
ID_EXTRA = {"plan": "free", "department": "R&D"}

EXPECTED = {"PLAN": "enterprise", "SEATS": "25", "RATIO": "1.5", "TRIAL": "false",
            "TAGS": 'beta,eu,3,true,{"k":"v"}', "LIMITS": '{"seats":25,"sso":true}',
            "NOTE": "line1??X-Injected: 1?[31m", "ORG_TIER": "gold", "DEPARTMENT": "R&D",
            "GIVEN_NAME": "Ada", "EMAIL_VERIFIED": "true", "AMR": "conn_demo001",
            "XOID": "ext_org_demo"}


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


def claims_server(idp, httpd_factory, extra_conf=""):
    """/env: a CGI with the claims; /app, /split/x, /off, /open: proxied to a backend (second
    port) whose CGI sees Authorization (CGIPassAuth On)."""
    backend = "http://127.0.0.1:@PORT1@/backend"       # not under the protected /cgi-bin
    locations = (
        loc("/api/auth", " SetHandler scalekit\n") +
        loc("/cgi-bin", PROTECT) +
        "ScriptAlias /env @ROOT@/cgi-bin/envdump\n" +
        loc("/env", PROTECT + " ScalekitEnvVars all %s\n" % CLAIMS + SPOOF) +
        "ProxyPass /app %s\nProxyPass /split/x %s\nProxyPass /off %s\nProxyPass /open %s\n"
        % (backend, backend, backend, backend) +
        # Both in one section: the header names are made at start-up.
        loc("/app", PROTECT + " ScalekitEnvVars none\n ScalekitEnvVars plan org.tier note absent "
            "department tags\n ScalekitClaimHeaders X-Scalekit-\n ScalekitPassAccessToken On\n") +
        # In two sections: the prefix is joined per request.
        loc("/split", PROTECT + " ScalekitEnvVars plan org.tier\n") +
        loc("/split/x", " ScalekitClaimHeaders X-Claim-\n") +
        loc("/off", PROTECT + " ScalekitClaimHeaders X-Scalekit-\n") +
        loc("/open", " AuthType Scalekit\n ScalekitUnauthAction pass\n ScalekitPassAccessToken On\n"
            " Require valid-user\n") +
        "<VirtualHost 127.0.0.1:@PORT1@>\n ScriptAlias /backend @ROOT@/cgi-bin/envdump\n"
        " <Directory @ROOT@/cgi-bin>\n  CGIPassAuth On\n </Directory>\n</VirtualHost>\n")
    h = httpd_factory(idp=idp, locations=locations, proxy=True, extra_ports=1,
                      extra_conf=extra_conf)
    cgi = h.root / "cgi-bin" / "envdump"
    cgi.write_text(ENVDUMP_CGI)
    cgi.chmod(0o755)
    return h


def env_of(r):
    assert r.status_code == 200 and not r.history, (r.status_code, r.text[:500])
    return {k: bytes.fromhex(v).decode("utf-8") for k, v in r.json().items()}


def signed_in(idp, h, browser_session):
    idp.set_user(given_name="Ada", access_token_extra=ACCESS_EXTRA, id_token_extra=ID_EXTRA)
    s = browser_session()
    signin(h, s)
    return s


def test_any_claim_reaches_the_environment(idp, httpd_factory, browser_session):
    h = claims_server(idp, httpd_factory)
    s = signed_in(idp, h, browser_session)
    env = env_of(s.get(h.url + "/env", headers={"Accept": "application/json"}))
    for name, value in EXPECTED.items():
        assert env.get("SCALEKIT_" + name) == value, (name, env.get("SCALEKIT_" + name))
    assert env["SCALEKIT_SUB"] == "usr_demo001" and env["SCALEKIT_ROLES"] == "admin"   # "all"
    # Absent and null claims set nothing, and a SetEnvIf look-alike does not survive.
    assert "SCALEKIT_ABSENT" not in env and "SCALEKIT_NOTHING" not in env, env
    assert "spoofed" not in env.values() and "999" not in env.values(), env
    # The default configuration hands out the fixed set only.
    plain = env_of(s.get(h.url + "/cgi-bin/envdump"))
    assert "SCALEKIT_PLAN" not in plain and plain["SCALEKIT_SUB"] == "usr_demo001"


def test_claims_as_headers_and_the_token_upstream(idp, httpd_factory, browser_session):
    h = claims_server(idp, httpd_factory)
    s = signed_in(idp, h, browser_session)
    token = s.cookies.get("sk-access-token")
    forged = {"X-Scalekit-Plan": "forged", "Scalekit-Plan": "forged", "X-Scalekit-Absent": "forged",
              "X-Scalekit-Org-Tier": "forged", "Authorization": "Basic bWFsbG9yeTpwdw=="}
    env = env_of(s.get(h.url + "/app", headers=forged))
    assert env["HTTP_X_SCALEKIT_PLAN"] == "enterprise"
    assert env["HTTP_X_SCALEKIT_ORG_TIER"] == "gold"
    assert env["HTTP_X_SCALEKIT_DEPARTMENT"] == "R&D"               # from the ID token
    assert env["HTTP_X_SCALEKIT_TAGS"] == EXPECTED["TAGS"]
    assert env["HTTP_X_SCALEKIT_NOTE"] == EXPECTED["NOTE"]           # no header injection
    assert "HTTP_X_INJECTED" not in env
    assert env["HTTP_X_SCALEKIT_SUB"] == "usr_demo001"               # the fixed set as before
    assert "HTTP_X_SCALEKIT_ABSENT" not in env and "HTTP_SCALEKIT_PLAN" not in env
    assert "forged" not in env.values(), env
    assert env["HTTP_AUTHORIZATION"] == "Bearer " + token            # the client's is replaced
    # ScalekitClaimHeaders in another section than ScalekitEnvVars.
    split = env_of(s.get(h.url + "/split/x"))
    assert split["HTTP_X_CLAIM_PLAN"] == "enterprise" and split["HTTP_X_CLAIM_ORG_TIER"] == "gold"
    assert split["HTTP_X_CLAIM_SUB"] == "usr_demo001"
    # Off (the default): the client's Authorization goes through as it came, no token added.
    off = env_of(s.get(h.url + "/off", headers={"Authorization": "Basic YWRhOnB3"}))
    assert off["HTTP_AUTHORIZATION"] == "Basic YWRhOnB3"
    assert "HTTP_X_SCALEKIT_PLAN" not in off                         # not listed there
    assert token not in str(off)
    # Without a session ("pass"), On removes the client's Authorization.
    status, _, body = raw_request(h, "/open", [("Authorization", "Bearer forged.token.here")])
    assert status == 200 and b"HTTP_AUTHORIZATION" not in body and b"HTTP_X_FORWARDED_FOR" in body, body[:300]
    open_env = env_of(s.get(h.url + "/open"))
    assert open_env["HTTP_AUTHORIZATION"] == "Bearer " + token


def test_pass_access_token_sends_the_refreshed_token(idp, httpd_factory, browser_session):
    h = claims_server(idp, httpd_factory, extra_conf="ScalekitLeeway 0\n")
    s = signed_in(idp, h, browser_session)
    expired = expire_access_cookie(idp, s)
    r = s.get(h.url + "/app", allow_redirects=False)
    env = env_of(r)
    fresh = s.cookies.get("sk-access-token")
    assert fresh and fresh != expired
    assert len(endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")) == 1
    assert env["HTTP_AUTHORIZATION"] == "Bearer " + fresh, env.get("HTTP_AUTHORIZATION", "")[:40]
    assert env["HTTP_X_SCALEKIT_PLAN"] == "enterprise"


@pytest.mark.parametrize("value,complaint", [
    ("all email plan", "after all: claims only"),
    ("all all plan", "after all: claims only"),
    ("none plan", "after all: claims only"),
    ("plan 9lives", "'9lives' is neither a variable"),
    ("pl@n", "'pl@n' is neither a variable"),
    ("plan https://x/claim", "'https://x/claim' is neither a variable"),
    ('plan ""', "'' is neither a variable"),
    ("p" + "x" * 64, "at most 64"),
    ("organization.id", "claim 'organization.id' would be SCALEKIT_ORGANIZATION_ID, the variable "
                        "of organization_id"),
    ("session-id", "would be SCALEKIT_SESSION_ID"),
    ("Plan plan", "claims 'Plan' and 'plan' would both be SCALEKIT_PLAN"),
    ("org-tier org.tier", "would both be SCALEKIT_ORG_TIER"),
])
def test_bad_claim_names_are_refused(idp, module_path, value, complaint):
    rc, out = location_config_test(idp, module_path, "ScalekitEnvVars " + value)
    assert rc != 0 and re.search(r"Syntax error on line \d+ of .*httpd\.conf", out), out
    assert "ScalekitEnvVars" in out and complaint in out, out


@pytest.mark.parametrize("value", ["all plan xoid", "plan", "email Plan org.tier x-y_z.w",
                                   "all " + "p" * 64])
def test_good_claim_names_pass(idp, module_path, value):
    rc, out = location_config_test(idp, module_path, "ScalekitEnvVars " + value)
    assert rc == 0 and "Syntax OK" in out, out


def test_pass_access_token_takes_a_flag(idp, module_path):
    rc, out = location_config_test(idp, module_path, "ScalekitPassAccessToken On")
    assert rc == 0 and "Syntax OK" in out, out
    rc, out = location_config_test(idp, module_path, "ScalekitPassAccessToken yes")
    assert rc != 0 and "ScalekitPassAccessToken" in out, out
