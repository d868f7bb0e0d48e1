# SPDX-License-Identifier: Apache-2.0
"""A person in a real browser: Debian's Chromium, headless, driven by playwright-core
(tests/browser/signin.mjs) through the identity provider's sign-in page."""
import json
import os
import shutil
import sys
import subprocess
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from httpd import spki_hash  # noqa: E402

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
SCREENSHOT = os.environ.get("SK_SCREENSHOT")      # docs/ screenshot, when asked for


def run_signin(env, timeout=90):
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True,
                       capture_output=True, timeout=300)
    p = subprocess.run(["node", "signin.mjs"], cwd=BROWSER_DIR, env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, "browser sign-in failed:\n" + p.stdout[-2000:] + p.stderr[-4000:]
    return p.stdout


@pytest.fixture
def interactive_idp(idp):
    idp.set_auto_login(False)          # the sign-in page, as a person sees it
    return idp


def test_person_signs_in_with_chromium(interactive_idp, httpd_factory, tmp_path):
    assert shutil.which("chromium") or os.path.exists("/usr/bin/chromium"), "chromium is not installed"
    h = httpd_factory(idp=interactive_idp)
    shot = SCREENSHOT or str(tmp_path / "signed-in.png")
    run_signin({"SITE": h.url, "START": "/cgi-bin/whoami?text", "NAME": "Grace Hopper",
                "EMAIL": "grace@example.com", "EXPECT": "SCALEKIT_NAME=Grace Hopper",
                "SCREENSHOT": shot, "LOGOUT": "/api/auth/logout"})
    assert os.path.getsize(shot) > 1000
    log = h.access_log()
    assert any(row["status"] == 200 and "whoami" in row["uri"] and row["user"] == "usr_demo001"
               for row in log)


def test_person_signs_in_to_php_page(interactive_idp, httpd_factory):
    h = httpd_factory(idp=interactive_idp, php=True)
    run_signin({"SITE": h.url, "START": "/dashboard/whoami.php", "NAME": "Ada Lovelace",
                "EMAIL": "ada@example.com", "EXPECT": "ada@example.com"})


# ---- production shapes: https with HTTP/2, the identity provider on its own https origin ----

def signin_result(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def trusted_spki(h, idp):
    """The site's and the IdP's certificates, and only those, for Chromium to accept."""
    return ",".join((spki_hash(h.cert), spki_hash(os.path.join(idp.state_dir, "server.pem"))))


def expected_protocol(h):
    return "http/1.1" if h.mpm == "prefork" else "h2"     # mod_http2 needs a threaded MPM


def test_person_signs_in_over_https_and_http2(interactive_idp, httpd_factory):
    """The whole sign-in in Chromium over TLS: the site on https with HTTP/2 (Protocols h2
    http/1.1), Scalekit on another https origin. The protected page comes over h2 and the session
    cookies are Secure without any setting (ScalekitCookieSecure auto)."""
    h = httpd_factory(idp=interactive_idp, idp_https=True, tls=True)
    assert h.url.startswith("https://localhost:")
    res = signin_result(run_signin({
        "SITE": h.url, "START": "/cgi-bin/whoami?text", "NAME": "Grace Hopper",
        "EXPECT": "SCALEKIT_NAME=Grace Hopper", "SPKI": trusted_spki(h, interactive_idp),
        "LOGOUT": "/api/auth/logout"}))
    assert res["protocol"] == expected_protocol(h), res
    access = [c for c in res["cookies"] if c["name"] == "sk-access-token"]
    assert access and all(c["secure"] and c["httpOnly"] for c in access), res["cookies"]
    assert any(row["status"] == 200 and "whoami" in row["uri"] and row["user"] == "usr_demo001"
               for row in h.access_log())


def test_host_prefixed_cookies_in_chromium_over_https(interactive_idp, httpd_factory):
    """ScalekitCookieNames with __Host- names: Chromium keeps them only when they are Secure, have
    Path=/ and no Domain, so a sign-in that lands signed in shows the module set them right."""
    names = "__Host-sk-access __Host-sk-id __Host-sk-refresh __Host-sk-state- __Host-sk-session"
    h = httpd_factory(idp=interactive_idp, idp_https=True, tls=True,
                      extra_conf="ScalekitCookieNames " + names)
    res = signin_result(run_signin({
        "SITE": h.url, "START": "/cgi-bin/whoami?text", "NAME": "Ada Lovelace",
        "EMAIL": "ada@example.com", "EXPECT": "SCALEKIT_NAME=Ada Lovelace",
        "SPKI": trusted_spki(h, interactive_idp), "ACCESS_COOKIE": "__Host-sk-access",
        "LOGOUT": "/api/auth/logout"}))
    assert res["protocol"] == expected_protocol(h), res
    host = [c for c in res["cookies"] if c["name"].startswith("__Host-")]
    assert {c["name"] for c in host} >= {"__Host-sk-access", "__Host-sk-id"}, res["cookies"]
    assert all(c["secure"] and c["path"] == "/" and c["domain"] == "localhost" for c in host)


def test_websocket_from_a_signed_in_page_over_https(interactive_idp, httpd_factory):
    """A signed-in page in Chromium opens a wss:// WebSocket to an application behind
    mod_proxy_wstunnel in a protected location: the browser's own upgrade carries the session
    cookie, the backend sees the claim headers, and the echo comes back."""
    from wsecho import WsEcho
    with WsEcho() as ws:
        h = httpd_factory(idp=interactive_idp, idp_https=True, tls=True, proxy=True,
                          extra_modules=["proxy_wstunnel"], extra_conf=(
                              "<Location /ws/>\n AuthType Scalekit\n Require valid-user\n"
                              " ScalekitClaimHeaders X-Scalekit-\n ProxyPass ws://127.0.0.1:%d/ws/\n"
                              "</Location>\n" % ws.port))
        res = signin_result(run_signin({
            "SITE": h.url, "START": "/dashboard/", "NAME": "Grace Hopper", "EXPECT": "dashboard",
            "SPKI": trusted_spki(h, interactive_idp), "WEBSOCKET": "/ws/live"}))
    seen = res["websocket"]["first"]
    assert seen["path"] == "/ws/live"
    assert seen["headers"]["x-scalekit-email"] == "grace@example.com", seen
    assert seen["headers"]["x-scalekit-name"] == "Grace Hopper", seen
    assert res["websocket"]["echo"] == "ping from chromium"
