# SPDX-License-Identifier: Apache-2.0
"""Which token is which, and whose: the ID token is bound to the access token's session, a logout
token is never a session token, an ID token's audience follows OIDC Core 3.1.3.7, sign-out acts
only on the browser's own session, and a back-channel logout by user ends every session of it."""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from test_scaleout import logout_token, session_sid, stored
from test_signin import endpoint_calls, signin

API = {"Accept": "application/json"}
BCL_EVENT = {"http://schemas.openid.net/event/backchannel-logout": {}}
HANDLER = "<Location /api/auth>\n SetHandler scalekit\n</Location>\n"


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


def whoami(h, cookies=None, headers=None, path="/cgi-bin/whoami"):
    return requests.get(h.url + path, cookies=cookies, headers={**API, **(headers or {})},
                        allow_redirects=False)


# ------------------------------------------------------------------------------------------------
# The ID token is bound to the access token
# ------------------------------------------------------------------------------------------------

def binding_server(idp, httpd_factory):
    """/cgi-bin as usual; /org and /claim need the old ID token's organization or email; port 2
    (a virtual host) takes REMOTE_USER from the email, which only ID tokens carry."""
    cgi = "ScriptAlias /org @ROOT@/cgi-bin/whoami\nScriptAlias /claim @ROOT@/cgi-bin/whoami\n"
    locations = (HANDLER + loc("/cgi-bin", " AuthType Scalekit\n Require valid-user\n") +
                 loc("/org", " AuthType Scalekit\n Require scalekit-organization org_old\n") +
                 loc("/claim", " AuthType Scalekit\n Require scalekit-claim email old@example.com\n"))
    vhost = ("<VirtualHost 127.0.0.1:@PORT1@>\n ServerName localhost\n ScalekitRemoteUserClaim email\n"
             "</VirtualHost>\n")
    return httpd_factory(idp=idp, locations=locations, extra_conf=cgi + vhost, extra_ports=1)


def test_id_token_of_another_session_lends_no_claims(idp, httpd_factory):
    """An old ID token of the same user (another sign-in: other sid, other organization, other
    name) beside the current access token: none of its claims reach the environment,
    ScalekitRemoteUserClaim, Require scalekit-organization or Require scalekit-claim."""
    h = binding_server(idp, httpd_factory)
    other_port = "http://localhost:%d" % h.ports[1]
    old = {"sid": "ses_old", "oid": "org_old", "email": "old@example.com", "name": "Old Name"}
    old_id = idp.mint(old, base="id")
    for access in (idp.mint({"sid": "ses_new", "oid": None}, base="access"),   # no oid of its own
                   idp.mint({"sid": "ses_new", "oid": "org_new"}, base="access")):
        jar = {"sk-access-token": access, "sk-id-token": old_id}
        r = whoami(h, jar)
        assert r.status_code == 200, r.text[:300]
        seen = r.json()
        assert seen["REMOTE_USER"] == "usr_demo001"
        assert "SCALEKIT_EMAIL" not in seen and "SCALEKIT_NAME" not in seen, seen
        assert seen.get("SCALEKIT_ORGANIZATION_ID") != "org_old"
        assert whoami(h, jar, path="/org").status_code in (401, 403)
        assert whoami(h, jar, path="/claim").status_code in (401, 403)
        r = requests.get(other_port + "/cgi-bin/whoami", cookies=jar, headers=API, allow_redirects=False)
        assert r.status_code == 401                      # no email: no REMOTE_USER
    assert "is of another session" in h.error_log()
    # An ID token without a sid cannot show it is of the access token's session either.
    jar = {"sk-access-token": idp.mint({"sid": "ses_new"}, base="access"),
           "sk-id-token": idp.mint(dict(old, sid=None, oid="org_demo"), base="id")}
    assert "SCALEKIT_EMAIL" not in whoami(h, jar).json()
    # Control: the ID token of the same session lends its profile.
    jar = {"sk-access-token": idp.mint({"sid": "ses_old", "oid": None}, base="access"),
           "sk-id-token": old_id}
    seen = whoami(h, jar).json()
    assert seen["SCALEKIT_EMAIL"] == "old@example.com" and seen["SCALEKIT_ORGANIZATION_ID"] == "org_old"
    assert whoami(h, jar, path="/org").status_code == 200
    assert whoami(h, jar, path="/claim").status_code == 200
    r = requests.get(other_port + "/cgi-bin/whoami", cookies=jar, headers=API, allow_redirects=False)
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "old@example.com"


def test_signin_whose_id_token_is_of_another_session_is_refused(httpd, idp):
    idp.set_user(id_token_extra={"sid": "ses_someone_elses"})
    s = requests.Session()
    first = s.get(httpd.url + "/api/auth/login", allow_redirects=False)
    at_idp = s.get(first.headers["Location"], allow_redirects=False)
    done = s.get(at_idp.headers["Location"], allow_redirects=False)
    assert done.status_code == 502
    assert not s.cookies.get("sk-access-token")


# ------------------------------------------------------------------------------------------------
# Sign-out acts on the browser's own session only
# ------------------------------------------------------------------------------------------------

def revoked_sids(idp):
    return [e["path"].split("/")[-2] for e in idp.log()
            if e["path"].startswith("/api/v1/sessions/") and e["path"].endswith("/revoke")]


def test_leaked_id_token_hint_revokes_nothing_of_its_owner(idp, httpd_factory, browser_session):
    """The victim's ID token (id_token_hint travels in logout URLs) planted in the attacker's
    cookies: the attacker's sign-out revokes the attacker's own Scalekit session, never the
    victim's, and does not name the victim's token to Scalekit either."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitRevokeOnLogout On\n")
    victim = browser_session()
    signin(h, victim)
    victim_id = victim.cookies.get("sk-id-token")
    victim_sid = session_sid(h, victim)
    idp.set_user(sub="usr_mallory", email="m@example.com")
    mallory = browser_session()
    signin(h, mallory)
    mallory_sid = session_sid(h, mallory)
    jar = {"sk-access-token": mallory.cookies.get("sk-access-token"),
           "sk-refresh-token": mallory.cookies.get("sk-refresh-token"), "sk-id-token": victim_id}
    for cookies, revoked in ((jar, [mallory_sid]),                      # beside her own session
                             ({"sk-id-token": victim_id}, []),           # or alone
                             ({"sk-id-token": victim_id, "sk-refresh-token": "x"}, [])):
        idp.clear_log()
        r = requests.get(h.url + "/api/auth/logout", cookies=cookies, allow_redirects=False)
        assert r.status_code == 302
        assert revoked_sids(idp) == revoked, (revoked_sids(idp), victim_sid)
        assert victim_id not in r.headers["Location"]
    # The victim's Scalekit session lives on: her refresh token still works.
    r = requests.post(idp.url + "/oauth/token", data={
        "grant_type": "refresh_token", "client_id": idp.client_id, "client_secret": idp.client_secret,
        "refresh_token": victim.cookies.get("sk-refresh-token")})
    assert r.status_code == 200, r.text


def test_revoke_on_logout_takes_the_access_tokens_session(idp, httpd_factory, browser_session):
    """The session revoked is the access token's, also once it has expired (an idle user signing
    out); the bound ID token is the hint."""
    idp.lifetimes(access=1)
    h = httpd_factory(idp=idp, extra_conf="ScalekitRevokeOnLogout On\nScalekitLeeway 0\n")
    s = browser_session()
    signin(h, s)
    sid = session_sid(h, s)
    id_token = s.cookies.get("sk-id-token")
    time.sleep(2.2)
    idp.clear_log()
    r = s.get(h.url + "/api/auth/logout", allow_redirects=False)
    assert revoked_sids(idp) == [sid]
    assert "id_token_hint=" + id_token in r.headers["Location"]


# ------------------------------------------------------------------------------------------------
# Token kinds
# ------------------------------------------------------------------------------------------------

def test_logout_token_is_never_a_session_token(idp, httpd_factory):
    h = httpd_factory(idp=idp, locations=HANDLER + loc("/cgi-bin", " AuthType Scalekit\n"
                      " ScalekitBearer On\n Require valid-user\n"))
    forged = idp.mint({"events": BCL_EVENT}, base="access")          # an access token's claims + events
    typed = idp.mint({}, base="access", header={"typ": "logout+jwt"})
    for token in (forged, typed):
        assert whoami(h, {"sk-access-token": token}).status_code == 401
        assert whoami(h, headers={"Authorization": "Bearer " + token}).status_code == 401
    # As the ID token beside a good access token of its session: no session either.
    access = idp.mint({"sid": "ses_x"}, base="access")
    bad_id = idp.mint({"sid": "ses_x", "events": BCL_EVENT}, base="id")
    assert whoami(h, {"sk-access-token": access, "sk-id-token": bad_id}).status_code == 401
    assert "wrong-token-kind" in h.error_log()
    # Control: the same access token without events is a session, as cookie and as bearer.
    good = idp.mint({}, base="access")
    assert whoami(h, {"sk-access-token": good}).status_code == 200
    assert whoami(h, headers={"Authorization": "Bearer " + good}).status_code == 200


def test_id_token_with_several_audiences_needs_azp(idp, httpd):
    """OIDC Core 3.1.3.7: aud holds the client id; with other audiences beside it, azp must be
    there and name the client."""
    access = idp.mint({"sid": "ses_aud"}, base="access")

    def with_id(**claims):
        return whoami(httpd, {"sk-access-token": access,
                              "sk-id-token": idp.mint(dict({"sid": "ses_aud"}, **claims), base="id")})
    both = [idp.client_id, "skc_other"]
    assert with_id(aud=both, azp=None).status_code == 401
    assert with_id(aud=both, azp="skc_other").status_code == 401
    assert with_id(aud=["skc_other"], azp=None).status_code == 401
    r = with_id(aud=both, azp=idp.client_id)
    assert r.status_code == 200 and r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    r = with_id(aud=[idp.client_id], azp=None)                     # one audience: azp optional
    assert r.status_code == 200 and r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    assert "wrong-token-kind" in httpd.error_log()


def test_typed_logout_token_is_accepted_at_the_back_channel(idp, httpd_factory, browser_session):
    h = stored(idp, httpd_factory, "shmcb")
    s = browser_session()
    signin(h, s)
    sid = session_sid(h, s)
    token = idp.mint(logout_claims(idp, sid=sid), header={"typ": "logout+jwt"})
    r = requests.post(h.url + "/api/auth/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 200, r.text
    assert whoami(h, {"sk-session": s.cookies.get("sk-session")}).status_code == 401


def logout_claims(idp, **over):
    now = int(time.time())
    claims = {"iss": idp.url, "aud": [idp.client_id], "iat": now, "exp": now + 120,
              "jti": uuid.uuid4().hex, "events": BCL_EVENT}
    claims.update(over)
    return claims


# ------------------------------------------------------------------------------------------------
# Back-channel logout by user: every session, however many, however concurrent
# ------------------------------------------------------------------------------------------------

def many_signins(h, browser_session, n=40, workers=10):
    def one(_):
        s = browser_session()
        signin(h, s)
        return s
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def jar_of(s):
    return {c.name: c.value for c in s.cookies if c.name.startswith("sk-")}


def check_logout_by_sub_ends_all(h, idp, browser_session):
    idp.set_user(sub="usr_many")
    sessions = many_signins(h, browser_session)
    idp.set_user(sub="usr_bystander")
    bystander = browser_session()
    signin(h, bystander)
    with ThreadPoolExecutor(8) as pool:
        before = list(pool.map(lambda s: whoami(h, jar_of(s)).status_code, sessions))
    assert before == [200] * 40
    r = requests.post(h.url + "/api/auth/backchannel-logout",
                      data={"logout_token": logout_token(idp, sub="usr_many")})
    assert r.status_code == 200, r.text
    with ThreadPoolExecutor(8) as pool:
        after = list(pool.map(lambda s: whoami(h, jar_of(s)).status_code, sessions))
    assert after == [401] * 40, after
    assert whoami(h, jar_of(bystander)).status_code == 200   # another user's session stays
    # A sign-in after the logout is a new session (issued later than the logout token).
    time.sleep(1.1)
    idp.set_user(sub="usr_many")
    again = browser_session()
    assert signin(h, again).json()["REMOTE_USER"] == "usr_many"


def test_back_channel_logout_by_sub_ends_40_stored_sessions(idp, httpd_factory, browser_session):
    check_logout_by_sub_ends_all(stored(idp, httpd_factory, "shmcb"), idp, browser_session)


def test_back_channel_logout_by_sub_ends_40_cookie_sessions(idp, httpd_factory, browser_session):
    """Cookie sessions: the sign-out is kept in this machine's shared cache."""
    check_logout_by_sub_ends_all(httpd_factory(idp=idp), idp, browser_session)


def test_back_channel_logout_by_sid_in_cookie_mode(idp, httpd, browser_session):
    s = browser_session()
    signin(httpd, s)
    other = browser_session()
    signin(httpd, other)
    r = requests.post(httpd.url + "/api/auth/backchannel-logout",
                      data={"logout_token": logout_token(idp, sid=session_sid(httpd, s))})
    assert r.status_code == 200
    r = whoami(httpd, jar_of(s))
    assert r.status_code == 401 and not endpoint_calls(idp, "/oauth/token", grant_type="refresh_token")
    assert whoami(httpd, jar_of(other)).status_code == 200   # the same user's other session stays
