"""A person in a real browser: Debian's Chromium, headless, driven by playwright-core
(tests/browser/signin.mjs) through the identity provider's sign-in page."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
