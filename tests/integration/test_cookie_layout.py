# SPDX-License-Identifier: Apache-2.0
"""Cookie sessions: where each cookie goes. The ID token (~1 KB) goes only to the sign-in handler's
path (the callback's parent, /api/auth here), where sign-out names it as id_token_hint and the
session JSON shows it; every other request carries a small sealed profile cookie (sk-profile, the
verified ID token's claims without the JWT plumbing) in its place, bound to the access token's
session as the ID token is. A browser that signed in before the move keeps working and moves at its
next refresh; __Host- names, and a callback at the root, keep the ID token at Path=/."""
import time

import requests

from test_signin import expire_access_cookie, set_cookies

API = {"Accept": "application/json"}
HANDLER = "<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
PROTECT = " AuthType Scalekit\n Require valid-user\n"


def loc(path, body):
    return "<Location %s>\n%s</Location>\n" % (path, body)


def parse(line):
    """A Set-Cookie line: (name, value, {attribute (lower case): value})."""
    parts = [p.strip() for p in line.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for a in parts[1:]:
        k, _, v = a.partition("=")
        attrs[k.lower()] = v
    return name, value, attrs


def by_name_path(r):
    """{(name, path): (value, attrs)} of a response's Set-Cookie lines."""
    out = {}
    for line in set_cookies(r):
        name, value, attrs = parse(line)
        out[(name, attrs.get("path"))] = (value, attrs)
    return out


def cleared(attrs):
    return attrs.get("max-age") == "0"


def callback(h, s, return_to="/cgi-bin/whoami"):
    """Sign in with s up to the callback's answer, not followed: that response."""
    r = s.get(h.url + "/api/auth/login", params={"return_to": return_to}, allow_redirects=False)
    r = s.get(r.headers["Location"], allow_redirects=False)          # the IdP signs in at once
    cb = s.get(r.headers["Location"], allow_redirects=False)
    assert cb.status_code == 302, (cb.status_code, cb.text[:300])
    return cb


def whoami(h, s=None, cookies=None, path="/cgi-bin/whoami"):
    get = s.get if s is not None else requests.get
    return get(h.url + path, cookies=cookies, headers=API, allow_redirects=False)


def sent_cookie(r):
    return r.request.headers.get("Cookie", "")


def test_signin_scopes_id_token_to_handler_and_sets_profile(httpd, idp):
    s = requests.Session()
    cb = callback(httpd, s)
    got = by_name_path(cb)
    id_value, id_attrs = got[("sk-id-token", "/api/auth")]
    profile, p_attrs = got[("sk-profile", "/")]
    assert id_value.count(".") == 2 and profile and "." not in profile
    for attrs in (id_attrs, p_attrs, got[("sk-access-token", "/")][1],
                  got[("sk-refresh-token", "/")][1]):
        assert "httponly" in attrs and attrs["samesite"] == "Lax" and "max-age" not in attrs
    assert ("sk-id-token", "/") not in got                # the browser had no ID cookie
    assert len(profile) < len(id_value) / 2
    # A browser with an ID cookie at Path=/ (signed in before the move) signing in again: that
    # one is cleared, first, so that a jar keyed by name alone keeps the new one.
    again = requests.Session()
    again.cookies.set("sk-id-token", id_value, domain="localhost.local", path="/")
    cb = callback(httpd, again)
    assert cleared(by_name_path(cb)[("sk-id-token", "/")][1])
    names = [(parse(line)[0], parse(line)[2].get("path")) for line in set_cookies(cb)]
    assert names.index(("sk-id-token", "/")) < names.index(("sk-id-token", "/api/auth"))

    # A protected request: access, refresh and profile; the ID token stays home.
    r = whoami(httpd, s)
    assert r.status_code == 200, r.text[:300]
    header = sent_cookie(r)
    sent = dict(p.split("=", 1) for p in header.split("; "))
    assert set(sent) == {"sk-access-token", "sk-refresh-token", "sk-profile"}, sorted(sent)
    before = len(header) + len("; sk-id-token=") + len(id_value) - len("; sk-profile=") - len(profile)
    print("\nCookie header of a protected request: %d bytes (the old layout's: %d)"
          % (len(header), before))
    assert before - len(header) > 500
    seen = r.json()
    assert seen["REMOTE_USER"] == "usr_demo001"
    assert seen["SCALEKIT_EMAIL"] == "ada@example.com" and seen["SCALEKIT_NAME"] == "Ada Lovelace"
    assert "sk-" not in (seen.get("HTTP_COOKIE") or "")   # the profile too is stripped

    # The handler's path gets the ID token: the session JSON shows its claims.
    r = s.get(httpd.url + "/api/auth/session", allow_redirects=False)
    assert "sk-id-token=" + id_value in sent_cookie(r)
    body = r.json()
    assert body["email"] == "ada@example.com" and body["name"] == "Ada Lovelace"
    assert body["id_token_claims"]["email"] == "ada@example.com"


def test_custom_id_token_claims_reach_the_application_through_the_profile(idp, httpd_factory):
    idp.set_user(id_token_extra={"plan": "gold", "department": "R&D"})
    cgi = "ScriptAlias /claim @ROOT@/cgi-bin/whoami\n"
    h = httpd_factory(idp=idp, extra_conf=cgi, locations=(
        HANDLER + loc("/cgi-bin", PROTECT + " ScalekitEnvVars all plan department\n") +
        loc("/claim", " AuthType Scalekit\n Require scalekit-claim plan gold\n")))
    s = requests.Session()
    callback(h, s)
    r = whoami(h, s)
    assert "sk-id-token" not in sent_cookie(r) and "sk-profile" in sent_cookie(r)
    seen = r.json()
    assert seen["SCALEKIT_PLAN"] == "gold" and seen["SCALEKIT_DEPARTMENT"] == "R&D", seen
    assert seen["SCALEKIT_EMAIL"] == "ada@example.com"
    assert whoami(h, s, path="/claim").status_code == 200


def test_altered_or_foreign_profile_lends_no_claims(httpd, idp):
    """A profile that does not open (altered, a state cookie offered as one: the sealing's
    binding differs, nonsense) is not used: the session stands on its access token, without the
    profile's claims, and the log names the cookie."""
    s = requests.Session()
    callback(httpd, s)
    jar = {"sk-access-token": s.cookies.get("sk-access-token"),
           "sk-profile": s.cookies.get("sk-profile")}
    seen = whoami(httpd, cookies=jar).json()             # control: the profile lends its claims
    assert seen["SCALEKIT_EMAIL"] == "ada@example.com"
    p = jar["sk-profile"]
    other = requests.get(httpd.url + "/api/auth/login", allow_redirects=False)
    state = [parse(c)[1] for c in set_cookies(other) if c.startswith("sk-state-")][0]
    for bad in (p[:40] + ("A" if p[40] != "A" else "B") + p[41:], p[:-2], state, "x" * 300):
        r = whoami(httpd, cookies=dict(jar, **{"sk-profile": bad}))
        assert r.status_code == 200, r.text[:300]
        seen = r.json()
        assert seen["REMOTE_USER"] == "usr_demo001"
        assert "SCALEKIT_EMAIL" not in seen and "SCALEKIT_NAME" not in seen, seen
    assert httpd.error_log().count("does not open") >= 4


def test_profile_of_another_session_is_dropped(httpd, idp):
    """Bound as the ID token is: another session's profile of the same user lends nothing (logged);
    another user's profile beside the access token refuses the session, as such an ID token does."""
    idp.set_user(name="First Session")
    first = requests.Session()
    callback(httpd, first)
    idp.set_user(name="Second Session")
    second = requests.Session()
    callback(httpd, second)
    idp.set_user(sub="usr_other", email="other@example.com", name="Other User")
    third = requests.Session()
    callback(httpd, third)
    access = first.cookies.get("sk-access-token")
    seen = whoami(httpd, cookies={"sk-access-token": access,
                                  "sk-profile": first.cookies.get("sk-profile")}).json()
    assert seen["SCALEKIT_NAME"] == "First Session"
    r = whoami(httpd, cookies={"sk-access-token": access,
                               "sk-profile": second.cookies.get("sk-profile")})
    assert r.status_code == 200 and "SCALEKIT_NAME" not in r.json(), r.text[:300]
    assert "profile cookie" in httpd.error_log() and "is of another session" in httpd.error_log()
    r = whoami(httpd, cookies={"sk-access-token": access,
                               "sk-profile": third.cookies.get("sk-profile")})
    assert r.status_code == 401
    assert "name different users" in httpd.error_log()


def test_profile_outlives_the_id_tokens_exp_as_the_id_token_did(idp, httpd_factory):
    """The ID token is a session's profile after its exp (the access token carries the session's
    life); so is the profile made of it."""
    idp.lifetimes(id=2)
    h = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n")
    s = requests.Session()
    callback(h, s)
    time.sleep(3.2)
    assert whoami(h, s).json()["SCALEKIT_EMAIL"] == "ada@example.com"


def test_browser_signed_in_before_the_move_keeps_working_and_moves_at_refresh(idp, httpd_factory):
    """Old layout: the ID token at Path=/, sent with every request, and no profile. It is used as
    ever; the refresh writes the new layout and clears the old cookie at Path=/."""
    idp.lifetimes(refresh_id_token=0)        # the refresh answer carries no new ID token either
    httpd = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n")
    s = requests.Session()
    callback(httpd, s)
    old = {"sk-access-token": s.cookies.get("sk-access-token"),
           "sk-id-token": s.cookies.get("sk-id-token"),
           "sk-refresh-token": s.cookies.get("sk-refresh-token")}
    r = whoami(httpd, cookies=old)
    assert r.status_code == 200 and r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    assert not set_cookies(r)
    now = int(time.time())
    old["sk-access-token"] = idp.mint({"exp": now - 5, "iat": now - 305, "nbf": now - 305},
                                      base="access")
    r = whoami(httpd, cookies=old)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    got = by_name_path(r)
    assert cleared(got[("sk-id-token", "/")][1])
    assert got[("sk-id-token", "/api/auth")][0] == old["sk-id-token"]
    profile = got[("sk-profile", "/")][0]
    new = {"sk-access-token": got[("sk-access-token", "/")][0],
           "sk-refresh-token": got[("sk-refresh-token", "/")][0], "sk-profile": profile}
    r = whoami(httpd, cookies=new)
    assert r.status_code == 200 and r.json()["SCALEKIT_NAME"] == "Ada Lovelace"
    assert not set_cookies(r)


def test_refresh_on_a_protected_path(idp, httpd_factory):
    """The ID token is not sent there. A refresh answer with a new one: new ID cookie (handler's
    path) and a new profile. One without: both stay as they are, and the request still has the
    profile's claims."""
    httpd = httpd_factory(idp=idp, extra_conf="ScalekitLeeway 0\n")
    s = requests.Session()
    callback(httpd, s)
    first_id = s.cookies.get("sk-id-token")
    expire_access_cookie(idp, s)
    r = whoami(httpd, s)
    assert r.status_code == 200 and r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    got = by_name_path(r)
    assert got[("sk-id-token", "/api/auth")][0] not in ("", first_id)
    assert got[("sk-profile", "/")][0]
    idp.lifetimes(refresh_id_token=0)
    expire_access_cookie(idp, s)
    profile = s.cookies.get("sk-profile")
    r = whoami(httpd, s)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
    names = {n for n, _ in by_name_path(r)}
    assert "sk-access-token" in names and not names & {"sk-id-token", "sk-profile"}, names
    assert s.cookies.get("sk-profile") == profile
    assert whoami(httpd, s).json()["SCALEKIT_NAME"] == "Ada Lovelace"


def test_signout_names_the_id_token_and_clears_every_cookie(httpd, idp):
    s = requests.Session()
    callback(httpd, s)
    id_token = s.cookies.get("sk-id-token")
    r = s.get(httpd.url + "/api/auth/logout", allow_redirects=False)
    assert r.status_code == 302
    assert "id_token_hint=" + id_token in r.headers["Location"]
    got = by_name_path(r)
    for key in (("sk-id-token", "/"), ("sk-id-token", "/api/auth"), ("sk-profile", "/"),
                ("sk-access-token", "/"), ("sk-refresh-token", "/")):
        assert key in got and cleared(got[key][1]), (key, sorted(got))
    assert not [c for c in s.cookies if c.name.startswith("sk-")]


def manual_callback(h, cookie_prefix=""):
    """A sign-in whose cookies are passed by hand (Secure ones over plain http)."""
    r = requests.get(h.url + "/api/auth/login", allow_redirects=False)
    name, value, _ = [parse(c) for c in set_cookies(r) if "-s-" in c or "state" in c][0]
    at_idp = requests.get(r.headers["Location"], allow_redirects=False)
    cb = requests.get(at_idp.headers["Location"], cookies={name: value}, allow_redirects=False)
    assert cb.status_code == 302, cb.text[:300]
    return by_name_path(cb)


def test_host_prefixed_names_keep_the_id_token_at_the_root(idp, httpd_factory):
    """__Host- cookies must have Path=/: the ID token stays there, and no profile is made."""
    h = httpd_factory(idp=idp, extra_conf="ScalekitCookieNames __Host-a __Host-i __Host-r "
                                          "__Host-s-\n")
    got = manual_callback(h)
    value, attrs = got[("__Host-i", "/")]
    assert value.count(".") == 2 and "secure" in attrs
    assert not [k for k in got if k[0] == "__Host-i" and k[1] != "/"]
    assert not [k for k in got if "profile" in k[0]], sorted(got)


def test_callback_at_the_root_keeps_the_id_token_at_the_root(idp, httpd_factory):
    conf = ("ScalekitEnvironmentURL %s\nScalekitClientID %s\nScalekitClientSecret %s\n"
            "ScalekitRedirectURI @URL@/callback\n" % (idp.url, idp.client_id, idp.client_secret))
    h = httpd_factory(idp=idp, scalekit_conf=conf, locations=(
        HANDLER + loc("/callback", " SetHandler scalekit\n") + loc("/cgi-bin", PROTECT)))
    s = requests.Session()
    r = s.get(h.url + "/api/auth/login", allow_redirects=False)
    r = s.get(r.headers["Location"], allow_redirects=False)
    cb = s.get(r.headers["Location"], allow_redirects=False)
    assert cb.status_code == 302, cb.text[:300]
    got = by_name_path(cb)
    assert got[("sk-id-token", "/")][0].count(".") == 2
    assert not [k for k in got if k[0] == "sk-profile"], sorted(got)
    r = whoami(h, s)
    assert "sk-id-token" in sent_cookie(r) and r.json()["SCALEKIT_EMAIL"] == "ada@example.com"
