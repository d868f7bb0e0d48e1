# SPDX-License-Identifier: Apache-2.0
"""The harness itself: a real apache2 from a throw-away ServerRoot, and nothing left running after."""
import json
import os

import pytest
import requests

from httpd import Httpd


def test_static_and_cgi_without_module(httpd_factory):
    h = httpd_factory(load_scalekit=False)
    r = requests.get(h.url + "/", timeout=5)
    assert r.status_code == 200 and "home" in r.text
    r = requests.get(h.url + "/cgi-bin/whoami", timeout=5)
    assert r.status_code == 200, h.error_log()
    assert r.json() == {"REMOTE_USER": None, "AUTH_TYPE": None, "HTTP_COOKIE": None}
    r = requests.get(h.url + "/cgi-bin/whoami?text", timeout=5)
    assert r.text.splitlines() == ["REMOTE_USER=", "AUTH_TYPE=", "HTTP_COOKIE="]
    assert [(row["status"], row["uri"]) for row in h.access_log(at_least=3)] == [
        (200, "/"), (200, "/cgi-bin/whoami"), (200, "/cgi-bin/whoami?text")]


def test_php_under_prefork(httpd_factory):
    h = httpd_factory(load_scalekit=False, php=True,
                      extra_conf="<Location /dashboard>\n SetEnv SCALEKIT_EMAIL a@b.c\n</Location>\n")
    r = requests.get(h.url + "/dashboard/whoami.php", timeout=5)
    assert r.status_code == 200, h.error_log()
    assert r.json()["getenv_SCALEKIT_EMAIL"] == "a@b.c"
    assert r.json()["SCALEKIT_EMAIL"] == "a@b.c"


@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
def test_mpms_and_graceful(httpd_factory, mpm):
    h = httpd_factory(load_scalekit=False, mpm=mpm)
    h.graceful(settle=True, extra_conf="Alias /again %s/index.html\n" % h.docroot)
    assert requests.get(h.url + "/again", timeout=5).status_code == 200
    h.restart()
    assert requests.get(h.url + "/", timeout=5).status_code == 200


def test_bad_directive_is_named(tmp_path):
    h = Httpd(load_scalekit=False, extra_conf="NoSuchDirective on\n")
    try:
        rc, out = h.config_test()
        assert rc != 0 and "NoSuchDirective" in out
    finally:
        h.cleanup()


def test_module_loads_and_passes_config_test(module_path, idp_stub):
    h = Httpd(module_path, idp=idp_stub)
    try:
        rc, out = h.config_test()
        assert rc == 0 and "Syntax OK" in out, out
    finally:
        h.cleanup()


def test_servers_are_gone_after_stop(httpd_factory):
    h = httpd_factory(load_scalekit=False)
    requests.get(h.url + "/cgi-bin/whoami", timeout=5)
    assert h.pids(), "the server should be running"
    h.stop()
    assert h.pids() == []
    with pytest.raises(requests.ConnectionError):
        requests.get(h.url + "/", timeout=2)


def test_start_failure_reports_the_logs(tmp_path):
    h = Httpd(load_scalekit=False, extra_conf="Alias /x %s\n<Directory /nonexistent>\n" % tmp_path)
    try:
        with pytest.raises(Exception) as e:
            h.start()
        assert "apache2 -t" in str(e.value) and h.pids() == []
    finally:
        h.stop()
        h.cleanup()


@pytest.fixture
def idp_stub(tmp_path):
    """Directive values only: `apache2 -t` contacts nobody."""
    class Stub:
        url = https_url = "http://127.0.0.1:9"
        client_id, client_secret, ca = "skc_demo", "demo-secret", None
    return Stub()


def test_cgi_sees_env_as_json(httpd_factory):
    """What the module will set is visible to CGI: here set by mod_env in place of the module."""
    h = httpd_factory(load_scalekit=False, extra_conf="SetEnv SCALEKIT_SUB usr_1\nSetEnv SCALEKIT_ROLES admin\n")
    seen = json.loads(requests.get(h.url + "/cgi-bin/whoami", timeout=5).text)
    assert seen["SCALEKIT_SUB"] == "usr_1" and seen["SCALEKIT_ROLES"] == "admin"
    assert os.path.basename(str(h.root)).startswith("skhttpd-")


def test_idp_fixture_and_default_directives(idp):
    h = Httpd(idp=idp, idp_https=True)
    try:
        conf = h.conf.read_text()
        assert "ScalekitEnvironmentURL %s\n" % idp.https_url in conf
        assert "ScalekitRedirectURI http://localhost:%d/api/auth/callback\n" % h.port in conf
        ca = h.root / "idp-ca.pem"   # a copy www-data can read
        assert "ScalekitCAFile %s\n" % ca in conf and ca.stat().st_mode & 0o004
        r = requests.get(idp.https_url + "/keys", verify=str(ca), timeout=5)
        assert r.status_code == 200 and r.json()["keys"]
    finally:
        h.cleanup()
