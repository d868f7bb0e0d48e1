# SPDX-License-Identifier: Apache-2.0
"""Scalekit's optional sign-in parameters (ScalekitLoginParams) and the organization switch
(ScalekitUnauthzAction login): what reaches the IdP's authorization endpoint, what the
configuration refuses, which of /login's query parameters count, and that a user outside the
organization a page needs is sent to sign in to it once, never in a loop."""
import pytest
import requests

from test_config import location_config_test
from test_signin import q

HANDLER = "<Location /api/auth>\n SetHandler scalekit\n%s</Location>\n"
ALL_PARAMS = ("organization_id=org_b connection_id=conn_7 domain_hint=example.com "
              "login_hint=a+b@example.com provider=google prompt=login")


def loc(path, body):
    return "<Location %s>\n AuthType Scalekit\n%s</Location>\n" % (path, body)


def authorizes(idp):
    return [e["query"] for e in idp.log() if e["path"] == "/oauth/authorize"]


def one(query):
    return {k: v[0] for k, v in query.items()}


def test_location_params_reach_the_authorization_request(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=HANDLER % "" + loc(
        "/dashboard", " Require valid-user\n ScalekitLoginParams %s\n" % ALL_PARAMS))
    s = browser_session()
    r = s.get(h.url + "/dashboard/", allow_redirects=False)
    assert r.status_code == 302
    assert "login_hint=a%2Bb%40example.com" in r.headers["Location"]          # escaped on the way
    done = s.get(r.headers["Location"])
    assert done.url == h.url + "/dashboard/" and done.status_code == 200
    sent = one(authorizes(idp)[0])
    for k, v in {"organization_id": "org_b", "connection_id": "conn_7", "domain_hint": "example.com",
                 "domain": "example.com", "login_hint": "a+b@example.com", "provider": "google",
                 "prompt": "login"}.items():
        assert sent[k] == v, k
    # A location without the directive sends none of them.
    h2 = httpd_factory(idp=idp, locations=HANDLER % "" + loc("/dashboard", " Require valid-user\n"))
    idp.clear_log()
    requests.get(h2.url + "/dashboard/", allow_redirects=True)
    assert not {"organization_id", "connection_id", "login_hint", "provider", "prompt"} & set(
        authorizes(idp)[0])


def test_inner_location_replaces_and_none_clears(idp, httpd_factory):
    h = httpd_factory(idp=idp, locations=HANDLER % "" +
                      loc("/dashboard", " Require valid-user\n ScalekitLoginParams organization_id=org_a "
                          "provider=github\n") +
                      loc("/dashboard/b", " ScalekitLoginParams connection_id=conn_b\n") +
                      loc("/dashboard/none", " ScalekitLoginParams none\n"))
    outer = q(requests.get(h.url + "/dashboard/", allow_redirects=False).headers["Location"])
    inner = q(requests.get(h.url + "/dashboard/b/", allow_redirects=False).headers["Location"])
    cleared = q(requests.get(h.url + "/dashboard/none/", allow_redirects=False).headers["Location"])
    assert (outer["organization_id"], outer["provider"]) == ("org_a", "github")
    assert inner["connection_id"] == "conn_b" and "organization_id" not in inner
    assert not {"organization_id", "connection_id", "provider"} & set(cleared)


@pytest.mark.parametrize("value,complaint", [
    ("tenant=org_1", "unknown parameter 'tenant'"),
    ("prompt=consent", "prompt must be login, create, select_account or none"),
    ("provider=okta", "provider must be google, microsoft"),
    ("organization_id=", "organization_id: empty value"),
    ("organization_id", "organization_id: no value"),
    ('"login_hint=a b@example.com"', "login_hint: unsafe character"),
    ("domain_hint=<x>.com", "domain_hint: unsafe character"),
    ("organization_id=org_1 organization_id=org_2", "organization_id is given twice"),
    ("none prompt=login", "expects key=value pairs, or none"),
    ("connection_id=" + "c" * 300, "longer than 256"),
])
def test_bad_login_params_refused_at_config_test(idp, module_path, value, complaint):
    rc, out = location_config_test(idp, module_path, "ScalekitLoginParams " + value)
    assert rc != 0
    assert "ScalekitLoginParams" in out and complaint in out, out


def test_bad_unauthz_action_refused(idp, module_path):
    rc, out = location_config_test(idp, module_path, "ScalekitUnauthzAction redirect")
    assert rc != 0 and "ScalekitUnauthzAction: expects 403 or login" in out, out
    rc, out = location_config_test(idp, module_path, "ScalekitUnauthzAction login\n "
                                   "ScalekitLoginParams prompt=select_account")
    assert rc == 0, out


def test_login_query_overrides_only_what_the_handler_does_not_fix(idp, httpd_factory):
    h = httpd_factory(idp=idp, locations=HANDLER % " ScalekitLoginParams organization_id=org_fixed\n")
    r = requests.get(h.url + "/api/auth/login", allow_redirects=False, params={
        "organization_id": "org_query", "login_hint": "grace@example.com", "provider": "okta",
        "prompt": "select_account", "connection_id": "conn 1"})
    sent = q(r.headers["Location"])
    assert sent["organization_id"] == "org_fixed"                 # fixed by the configuration
    assert sent["login_hint"] == "grace@example.com" and sent["prompt"] == "select_account"
    assert "provider" not in sent and "connection_id" not in sent  # values Scalekit would refuse
    assert "login: provider dropped" in h.error_log()
    # IdP-initiated sign-in cannot move a fixed organization either.
    token = idp.idp_initiated(connection_id="conn_9", organization_id="org_9")
    sent = q(requests.get(h.url + "/api/auth/login", params={"idp_initiated_login": token},
                          allow_redirects=False).headers["Location"])
    assert sent["organization_id"] == "org_fixed" and sent["connection_id"] == "conn_9"


def test_silent_retry_keeps_the_location_params(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=HANDLER % "" + loc(
        "/dashboard", " Require valid-user\n ScalekitSilentLogin On\n"
        " ScalekitLoginParams organization_id=org_b prompt=login\n"))
    s = browser_session()
    r = s.get(h.url + "/dashboard/")
    assert r.status_code == 200 and r.url == h.url + "/dashboard/"
    first, retry = [one(a) for a in authorizes(idp)]
    assert first["prompt"] == "none" and first["organization_id"] == "org_b"
    assert retry["prompt"] == "login" and retry["organization_id"] == "org_b"


# ------------------------------------------------------------------ organization switch

SWITCH = (HANDLER % "" + loc("/dashboard", " Require valid-user\n") +
          loc("/cgi-bin", " ScalekitBearer On\n ScalekitUnauthzAction login\n"
              " Require scalekit-organization org_b\n"))


def signed_in(h, browser_session):
    s = browser_session()
    assert s.get(h.url + "/dashboard/").url == h.url + "/dashboard/"     # as org_demo
    return s


def test_switch_sends_a_browser_to_sign_in_to_the_organization(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=SWITCH)
    s = signed_in(h, browser_session)
    r = s.get(h.url + "/cgi-bin/whoami?x=1", allow_redirects=False)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    assert r.headers["Location"].startswith(idp.url + "/oauth/authorize?")
    assert q(r.headers["Location"])["organization_id"] == "org_b"
    assert "WWW-Authenticate" not in r.headers and r.headers["Cache-Control"] == "no-store"
    assert any(c.name.startswith("sk-state-") for c in s.cookies)
    # Scalekit signs the user in to org_b (a fresh sign-in there): the page opens.
    s.cookies.clear(domain="127.0.0.1")
    done = s.get(r.headers["Location"])
    assert done.status_code == 200 and done.url == h.url + "/cgi-bin/whoami?x=1"
    assert done.json()["SCALEKIT_ORGANIZATION_ID"] == "org_b"
    assert "outside organization org_b here: sent to sign in to it" in h.error_log()


@pytest.mark.parametrize("strip", ["On", "Off"])
def test_switch_happens_once_then_403(idp, httpd_factory, browser_session, strip):
    # The mark is read from the request's cookies, or (ScalekitStripCookies On, the default) from
    # where the module keeps it once it has taken its cookies off the request.
    h = httpd_factory(idp=idp, locations=SWITCH, extra_conf="<Location />\n ScalekitStripCookies %s\n"
                      "</Location>\n" % strip)
    s = signed_in(h, browser_session)
    idp.clear_log()
    # The IdP keeps its org_demo session and signs the user in there again: still refused.
    r = s.get(h.url + "/cgi-bin/whoami")
    assert r.status_code == 403, (r.status_code, r.url)
    assert r.url == h.url + "/cgi-bin/whoami"
    assert "does not have access" in r.text
    assert len(authorizes(idp)) == 1                      # one round trip, no loop
    assert "still outside organization org_b after signing in to switch" in h.error_log()
    assert not s.cookies.get("sk-state-org")              # the mark is spent
    # A later visit may try once more (the user may have joined meanwhile), again only once.
    r = s.get(h.url + "/cgi-bin/whoami")
    assert r.status_code == 403 and len(authorizes(idp)) == 2


def test_switch_not_for_api_clients(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=SWITCH)
    s = signed_in(h, browser_session)
    xhr = s.get(h.url + "/cgi-bin/whoami", headers={"X-Requested-With": "XMLHttpRequest"},
                allow_redirects=False)
    fetch = s.get(h.url + "/cgi-bin/whoami", headers={"Sec-Fetch-Mode": "cors",
                                                       "Accept": "application/json"},
                  allow_redirects=False)
    bearer = requests.get(h.url + "/cgi-bin/whoami", allow_redirects=False, headers={
        "Authorization": "Bearer " + idp.mint({}, base="access")})
    assert (xhr.status_code, fetch.status_code, bearer.status_code) == (403, 403, 403)
    assert "Location" not in xhr.headers and "Location" not in bearer.headers


def test_switch_with_several_organizations_asks_the_user(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=HANDLER % "" + loc("/dashboard", " Require valid-user\n") +
                      loc("/cgi-bin", " ScalekitUnauthzAction login\n <RequireAny>\n"
                          "  Require scalekit-organization org_b org_c\n"
                          "  Require scalekit-organization org_d\n </RequireAny>\n"))
    s = signed_in(h, browser_session)
    r = s.get(h.url + "/cgi-bin/whoami", allow_redirects=False)
    assert r.status_code == 302
    sent = q(r.headers["Location"])
    assert sent["prompt"] == "select_account" and "organization_id" not in sent


def test_no_switch_by_default_nor_for_a_negated_rule(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=HANDLER % "" + loc("/dashboard", " Require valid-user\n") +
                      loc("/cgi-bin", " Require scalekit-organization org_b\n") +
                      "ScriptAlias /other @ROOT@/cgi-bin/whoami\n" +
                      loc("/other", " ScalekitUnauthzAction login\n <RequireAll>\n"
                          "  Require not scalekit-organization org_other\n"
                          "  Require scalekit-role auditor\n </RequireAll>\n") +
                      "ScriptAlias /none @ROOT@/cgi-bin/whoami\n" +
                      loc("/none", " ScalekitUnauthzAction login\n <RequireAll>\n"
                          "  Require valid-user\n  <RequireNone>\n"
                          "   Require scalekit-organization org_other\n"
                          "   Require scalekit-role admin\n  </RequireNone>\n </RequireAll>\n"))
    s = signed_in(h, browser_session)
    assert s.get(h.url + "/cgi-bin/whoami", allow_redirects=False).status_code == 403
    # org_other refuses the user, but "not" turns that into a grant: the refusal is the role's,
    # and signing in to org_other is no way in.
    assert s.get(h.url + "/other", allow_redirects=False).status_code == 403
    assert s.get(h.url + "/none", allow_redirects=False).status_code == 403
    assert "sent to sign in" not in h.error_log()
