# SPDX-License-Identifier: Apache-2.0
"""Open redirects: every payload of tests/corpora/open-redirect-payloads.txt (834 public ones plus
our own) used as return_to either is refused or, after a complete sign-in through the real httpd
and the local IdP, sends the browser to a page of this site. No payload host is ever contacted:
we only read where the module *would* send the browser."""
import re
import urllib.parse as up
from pathlib import Path

import requests

CORPUS = Path(__file__).resolve().parents[1] / "corpora"


def payloads():
    out = []
    for name in ("open-redirect-payloads.txt", "open-redirect-extra.txt"):
        path = CORPUS / name
        if path.exists():
            out += [line.rstrip("\n") for line in path.read_text(encoding="utf-8", errors="surrogateescape")
                    .split("\n") if line.strip()]
    return out


def browser_target(location, site):
    """Where a browser goes for this Location (WHATWG URL rules for an http base): returns the
    origin (scheme, host:port) it lands on."""
    loc = location.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
                         "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    loc = re.sub(r"[\t\n\r]", "", loc).replace("\\", "/")
    base = up.urlsplit(site)
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", loc)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme not in ("http", "https"):
            return (scheme, "")                      # javascript:, data:, ... : never ours
        if scheme == base.scheme and not rest.startswith("/"):
            loc = rest                               # "http:foo" is relative for a special scheme
        else:
            rest = "//" + rest.lstrip("/")
            return (scheme, up.urlsplit(rest).netloc.rsplit("@", 1)[-1].lower())
    if loc.startswith("//"):
        return (base.scheme, up.urlsplit("http:" + "//" + loc.lstrip("/")).netloc.rsplit("@", 1)[-1].lower())
    return (base.scheme, base.netloc)


def test_browser_target_model():
    site = "http://localhost:8080"
    assert browser_target("/x", site) == ("http", "localhost:8080")
    assert browser_target("//evil.example/x", site)[1] == "evil.example"
    assert browser_target("/\\evil.example", site)[1] == "evil.example"
    assert browser_target("/\t/evil.example", site)[1] == "evil.example"
    assert browser_target("javascript:alert(1)", site)[0] == "javascript"
    assert browser_target("https://a@evil.example/", site)[1] == "evil.example"


def test_corpus_is_large_enough():
    assert len(payloads()) >= 834


def test_no_payload_leads_off_site(httpd, idp):
    site = (up.urlsplit(httpd.url).scheme, up.urlsplit(httpd.url).netloc)
    refused = followed = 0
    s = requests.Session()
    s.trust_env = False
    for payload in payloads():
        r = s.get(httpd.url + "/api/auth/login", params={"return_to": payload}, allow_redirects=False)
        if r.status_code == 400:
            refused += 1
            continue
        assert r.status_code == 302, (payload, r.status_code)
        assert r.headers["Location"].startswith(idp.url + "/oauth/authorize?"), payload
        cb = s.get(r.headers["Location"], allow_redirects=False).headers["Location"]
        done = s.get(cb, allow_redirects=False)
        assert done.status_code == 302, (payload, done.status_code)
        assert browser_target(done.headers["Location"], httpd.url) == site, (payload, done.headers["Location"])
        followed += 1
        s.cookies.clear()
    assert refused + followed == len(payloads())
    assert refused > 600          # nearly all of the corpus is not a local path at all
    print("open redirects: %d refused, %d accepted and kept on site" % (refused, followed))
