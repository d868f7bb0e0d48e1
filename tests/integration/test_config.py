# SPDX-License-Identifier: Apache-2.0
"""Configuration: mistakes are refused by `apache2 -t` with the directive (and its file and line)
named; the environment variables of the guide's .env stand in for unset directives."""
import re

import pytest
import requests

from httpd import Httpd


def config(idp, **over):
    d = {"ScalekitEnvironmentURL": idp.url, "ScalekitClientID": idp.client_id,
         "ScalekitClientSecret": idp.client_secret, "ScalekitRedirectURI": "@URL@/api/auth/callback"}
    d.update(over)
    return "".join("%s %s\n" % (k, v) for k, v in d.items() if v is not None)


def check(idp, module_path, text):
    h = Httpd(module_path, idp=idp, scalekit_conf=text)
    try:
        return h.config_test()
    finally:
        h.cleanup()


def test_valid_configuration_passes(idp, module_path):
    rc, out = check(idp, module_path, config(idp))
    assert rc == 0 and "Syntax OK" in out, out


@pytest.mark.parametrize("missing,env", [("ScalekitClientID", "SCALEKIT_CLIENT_ID"),
                                         ("ScalekitClientSecret", "SCALEKIT_CLIENT_SECRET"),
                                         ("ScalekitRedirectURI", "SCALEKIT_REDIRECT_URI"),
                                         ("ScalekitEnvironmentURL", "SCALEKIT_ENVIRONMENT_URL")])
def test_missing_setting_is_named(idp, module_path, missing, env):
    rc, out = check(idp, module_path, config(idp, **{missing: None}))
    assert rc != 0
    assert "%s is not set (nor $%s)" % (missing, env) in out, out
    assert re.search(r"httpd\.conf:\d+", out), out               # where the Scalekit settings are


@pytest.mark.parametrize("directive,value,complaint", [
    ("ScalekitEnvironmentURL", "http://acme.scalekit.dev", "not loopback"),
    ("ScalekitEnvironmentURL", "https://acme.scalekit.dev/", "trailing slash"),
    ("ScalekitEnvironmentURL", "acme.scalekit.dev", "not an absolute URL"),
    ("ScalekitRedirectURI", "ftp://app/cb", "must be an https URL"),
    ("ScalekitRedirectURI", "https://app.example.com/cb?x=1", "must not carry a query"),
    ("ScalekitClientSecret", "file:/nonexistent/secret", "cannot read"),
    ("ScalekitScopes", "profile email", "must include openid"),
    ("ScalekitLeeway", "-1", "whole number from 0"),
    ("ScalekitTimeout", "abc", "whole number from 1"),
    ("ScalekitCookieSameSite", "Strict", "Lax or None"),
    ("ScalekitAllowedAlgorithms", "HS256", "is not one of RS256"),
    ("ScalekitAllowedAlgorithms", "none", "is not one of RS256"),
    ("ScalekitCookieNames", "a b c", "four to six names"),
    ("ScalekitCAFile", "/nonexistent.pem", "not a readable file"),
    ("ScalekitAllowedRedirectOrigin", "https://docs.example.com/path", "no path"),
])
def test_bad_value_is_refused_with_file_and_line(idp, module_path, directive, value, complaint):
    rc, out = check(idp, module_path, config(idp, **{directive: value}))
    assert rc != 0
    assert re.search(r"Syntax error on line \d+ of .*httpd\.conf", out), out
    assert directive in out and complaint in out, out


def location_config_test(idp, module_path, directive):
    """`apache2 -t` of a configured server with one protected location holding directive."""
    h = Httpd(module_path, idp=idp, scalekit_conf=config(idp), locations=(
        "<Location /app>\n AuthType Scalekit\n Require valid-user\n %s\n</Location>\n" % directive))
    try:
        return h.config_test()
    finally:
        h.cleanup()


@pytest.mark.parametrize("value,complaint", [("sub bog@us", "'bog@us' is neither a variable"),
                                             ("none email", "expects all, none, or a list"),
                                             ("", "expects all, none, or a list")])
def test_bad_env_vars_is_refused(idp, module_path, value, complaint):
    rc, out = location_config_test(idp, module_path, "ScalekitEnvVars " + value)
    assert rc != 0 and re.search(r"Syntax error on line \d+ of .*httpd\.conf", out), out
    assert "ScalekitEnvVars" in out and complaint in out, out


@pytest.mark.parametrize("value,complaint", [
    ('""', "takes one argument"),                    # httpd's own refusal of an empty word
    ("-Scalekit-", "must start with a letter"),
    ("Co", "would remove the client's Cookie header"),
    ("COOKIE", "would remove the client's Cookie header"),
    ("Authorization", "would remove the client's Authorization header"),
    ("x-", "would remove the client's X-Requested-With header"),
    ("Content-", "would remove the client's Content-Type header"),
    ("X-Scalekit_", "letters, digits and -"),
])
def test_unusable_claim_header_prefix_is_refused(idp, module_path, value, complaint):
    """Client headers starting with the prefix are removed: an empty prefix, or one covering
    Cookie, would sign nobody in. Refused by `apache2 -t`, not found out by the users."""
    rc, out = location_config_test(idp, module_path, "ScalekitClaimHeaders " + value)
    assert rc != 0 and re.search(r"Syntax error on line \d+ of .*httpd\.conf", out), out
    assert "ScalekitClaimHeaders" in out and complaint in out, out


def test_machine_clients_are_checked(idp, module_path):
    rc, out = location_config_test(idp, module_path, 'ScalekitMachineClients "m2morg_1 m2morg_2"')
    assert rc != 0 and re.search(r"Syntax error on line \d+ of .*httpd\.conf", out), out
    assert "ScalekitMachineClients: expects client ids" in out, out
    for value in ("m2morg_1", "m2morg_1 m2morg_2", "none"):
        rc, out = location_config_test(idp, module_path, "ScalekitMachineClients " + value)
        assert rc == 0 and "Syntax OK" in out, (value, out)


def test_usable_claim_header_prefixes_pass(idp, module_path):
    for value in ("X-Scalekit-", "Scalekit-", "X-Auth-User-", "Off"):
        rc, out = location_config_test(idp, module_path, "ScalekitClaimHeaders " + value)
        assert rc == 0 and "Syntax OK" in out, (value, out)


def without_shmcb(h):
    """The harness loads mod_socache_shmcb for every server: take it out of this one's config."""
    text = h.conf.read_text()
    h.conf.write_text(re.sub(r"^LoadModule socache_shmcb_module .*\n", "", text, flags=re.M))
    assert "socache_shmcb" not in h.conf.read_text()
    return h


@pytest.mark.parametrize("configured", [True, False])
def test_missing_socache_shmcb_is_refused_by_config_test(idp, module_path, configured):
    """The shared cache is opened in post_config, which `apache2 -t` does not run: the check
    must come earlier, or -t says Syntax OK and the start fails. Also for a server that loads
    the module without using it (post_config opens the cache all the same)."""
    h = Httpd(module_path, idp=idp, scalekit_conf=config(idp) if configured else "",
              locations=None if configured else "")
    try:
        rc, out = without_shmcb(h).config_test()
    finally:
        h.cleanup()
    assert rc != 0 and "Syntax OK" not in out, out
    assert "mod_scalekit needs mod_socache_shmcb" in out and "a2enmod socache_shmcb" in out, out


def test_secret_from_root_only_file(idp, module_path, tmp_path, httpd_factory, browser_session):
    secret = tmp_path / "scalekit.secret"
    secret.write_text(idp.client_secret + "\n")
    secret.chmod(0o600)                     # read by the root parent at start-up, not by children
    h = httpd_factory(idp=idp, scalekit_conf=config(idp, ScalekitClientSecret="file:%s" % secret))
    r = browser_session().get(h.url + "/cgi-bin/whoami")
    assert r.json()["REMOTE_USER"] == "usr_demo001"
    assert idp.client_secret not in h.error_log()


def test_environment_variables_stand_in(idp, httpd_factory, browser_session):
    env = {"SCALEKIT_ENVIRONMENT_URL": idp.url, "SCALEKIT_CLIENT_ID": idp.client_id,
           "SCALEKIT_CLIENT_SECRET": idp.client_secret}
    h = httpd_factory(idp=idp, scalekit_conf="", env=dict(env, SCALEKIT_REDIRECT_URI="http://localhost:0/x"))
    h.stop()
    # The redirect URI names the port we got: set it now and start again.
    h.env["SCALEKIT_REDIRECT_URI"] = h.url + "/api/auth/callback"
    h.start()
    r = browser_session().get(h.url + "/cgi-bin/whoami")
    assert r.json()["REMOTE_USER"] == "usr_demo001"


def test_module_loaded_without_settings_leaves_server_alone(httpd_factory):
    h = httpd_factory(scalekit_conf="", locations="")
    assert requests.get(h.url + "/").status_code == 200


def test_authtype_without_settings_is_a_logged_500(httpd_factory):
    h = httpd_factory(scalekit_conf="", locations="<Location /dashboard>\n AuthType Scalekit\n Require valid-user\n</Location>\n")
    assert requests.get(h.url + "/dashboard/").status_code == 500
    assert "not configured for this server" in h.error_log()


HOST_NAMES = "__Host-a __Host-i __Host-r __Host-s- __Host-sess"


@pytest.mark.parametrize("extra,complaint", [
    ("ScalekitCookieDomain example.com", "must not carry a Domain"),
    ("ScalekitCookieSecure off", "must be Secure"),
])
def test_host_prefixed_cookie_names_refuse_what_browsers_drop(idp, module_path, extra, complaint):
    """A __Host- cookie with a Domain, or without Secure, is dropped by every browser: nobody could
    sign in. `apache2 -t` says so, naming the cookie, whatever order the directives come in."""
    for text in (config(idp, ScalekitCookieNames=HOST_NAMES) + extra + "\n",
                 extra + "\n" + config(idp, ScalekitCookieNames=HOST_NAMES)):
        rc, out = check(idp, module_path, text)
        assert rc != 0, out
        assert "ScalekitCookieNames" in out and "__Host-a" in out and complaint in out, out
    rc, out = check(idp, module_path, config(idp, ScalekitCookieNames=HOST_NAMES))
    assert rc == 0 and "Syntax OK" in out, out


def test_secure_prefixed_cookie_names_refuse_secure_off(idp, module_path):
    rc, out = check(idp, module_path, config(idp, ScalekitCookieNames="__Secure-a b c d-",
                                             ScalekitCookieSecure="off"))
    assert rc != 0 and "'__Secure-a' must be Secure" in out, out
