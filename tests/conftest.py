# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every pytest suite of mod_scalekit.

    def test_sign_in(httpd, browser_session):          # httpd: module + local IdP, auto-login
        s = browser_session()
        r = s.get(httpd.url + "/api/auth/login?return_to=/dashboard/")
        assert r.url == httpd.url + "/dashboard/"

    def test_php(idp, httpd_factory):                   # any other server: httpd_factory(**Httpd kwargs)
        h = httpd_factory(idp=idp, php=True, extra_conf="...")

Cookies: a cookie jar (browsers and requests alike) ignores ports, so two servers on 127.0.0.1 would
share every cookie and be one "site" for SameSite. In production Scalekit lives on its own domain.
The local IdP's issuer is its bound address, so it is reached as 127.0.0.1; httpd is reached as
http://localhost:PORT (Httpd.url, the redirect URI) while listening on 127.0.0.1. Two hosts, two
cookie jars, a cross-site redirect: as in production. Httpd(public_host="127.0.0.1") for the other case.
"""
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))

from httpd import Httpd, build_module, default_mpm  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_report_header(config):
    # SK_TEST_MPM=worker|prefork runs every server that names no MPM under that one (php=True: prefork).
    return "httpd default MPM: %s (SK_TEST_MPM)" % default_mpm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether their test failed (to keep a failed test's ServerRoot for a look).
    rep = (yield).get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def module_path():
    path, err = build_module()
    if err:
        pytest.fail("mod_scalekit.so does not build:\n" + err, pytrace=False)
    return path


@pytest.fixture
def idp(tmp_path):
    """The local Scalekit-compatible IdP (tests/idp/skidp.py), auto-login on, fresh per test."""
    try:
        from idp import IdP
    except ImportError as e:
        pytest.skip("tests/lib/idp.py not available: %s" % e)
    server = IdP(state_dir=str(tmp_path / "idp"), auto_login=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def httpd_factory(request, module_path_lazy):
    """httpd_factory(**kwargs) -> a started Httpd (see tests/lib/httpd.py for the kwargs).
    Every server made here is stopped at teardown, whatever the test did; a sanitizer report in any
    of their logs (tests/run --asan) fails the test. A failed test's ServerRoots are kept."""
    servers = []

    def make(**kw):
        if "module_path" not in kw and kw.get("load_scalekit", True):
            kw["module_path"] = module_path_lazy()
        h = Httpd(**kw)
        servers.append(h)
        return h.start()

    yield make
    reports = []
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    for h in servers:
        h.stop()
        if h.sanitizer_reports():
            reports.append("%s:\n%s" % (h.root, h.sanitizer_reports()[:6000]))
        elif failed:
            print("kept ServerRoot of failed test: %s" % h.root)
        else:
            h.cleanup()
    if reports:
        pytest.fail("sanitizer reports (ServerRoot kept):\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def module_path_lazy(request):
    """Resolve module_path only when a server actually loads the module (plain servers need no build)."""
    return lambda: request.getfixturevalue("module_path")


@pytest.fixture
def httpd(httpd_factory, idp):
    """The default server: module loaded, wired to `idp`, /api/auth handler, /dashboard and /cgi-bin protected."""
    return httpd_factory(idp=idp)


@pytest.fixture
def browser_session():
    """browser_session(ca=None) -> a requests.Session that follows redirects across httpd and IdP, like a
    browser with one cookie jar. Pass ca=idp.ca when the IdP is https. http.cookiejar files httpd's
    cookies under domain "localhost.local" (its rule for dotless hosts): look them up by name alone,
    s.cookies.get("name"), or with that domain."""
    sessions = []

    def make(ca=None):
        s = requests.Session()
        # Not the environment's: REQUESTS_CA_BUNDLE would override s.verify, and proxies must not apply.
        s.trust_env = False
        if ca:
            s.verify = ca
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()
