# SPDX-License-Identifier: Apache-2.0
"""SetHandler scalekit-status: counters as text and JSON, across processes."""
import requests

from test_signin import signin

LOCATIONS = ("<Location /api/auth>\n SetHandler scalekit\n</Location>\n"
             "<Location /dashboard>\n AuthType Scalekit\n Require valid-user\n</Location>\n"
             "<Location /sk-status>\n SetHandler scalekit-status\n Require ip 127.0.0.1\n</Location>\n")


def test_status_counts_what_happened(idp, httpd_factory, browser_session):
    h = httpd_factory(idp=idp, locations=LOCATIONS + "<Location /cgi-bin>\n AuthType Scalekit\n"
                      " Require valid-user\n</Location>\n")
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    s = browser_session()
    signin(h, s)
    for _ in range(5):
        assert s.get(h.url + "/cgi-bin/whoami").status_code == 200
    bogus = idp.mint({"aud": ["skc_other"]}, base="access")
    requests.get(h.url + "/dashboard/", cookies={"sk-access-token": bogus}, headers={"Accept": "application/json"})
    after = requests.get(h.url + "/sk-status?json").json()
    all_ = after["all_processes"]
    assert all_["logins_started"] - before["logins_started"] == 1
    assert all_["callbacks_ok"] - before["callbacks_ok"] == 1
    assert all_["sessions_valid"] - before["sessions_valid"] >= 6
    assert all_["token_refusals"]["bad-audience"] >= 1
    assert "validations" in after["this_process"] and "jwks_fetches" in after["this_process"]
    text = requests.get(h.url + "/sk-status").text
    assert text.startswith("mod_scalekit status") and "callbacks_ok" in text


def test_status_counters_survive_graceful_restart(idp, httpd_factory, browser_session):
    """The counters are server-wide and since start: a graceful restart (a log rotation, a
    config reload) keeps them; what the processes count after it adds to them."""
    h = httpd_factory(idp=idp, locations=LOCATIONS)
    s = browser_session()
    signin(h, s)
    for _ in range(3):
        assert s.get(h.url + "/dashboard/").status_code == 200
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert before["callbacks_ok"] >= 1 and before["sessions_valid"] >= 3
    h.graceful()
    mid = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert mid["callbacks_ok"] == before["callbacks_ok"]
    assert mid["sessions_valid"] == before["sessions_valid"]
    assert s.get(h.url + "/dashboard/").status_code == 200
    after = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert after["sessions_valid"] == before["sessions_valid"] + 1


def test_status_counts_every_parallel_request(idp, httpd_factory, browser_session):
    """Each thread counts into a copy of its own (shards of shared memory, added up when read):
    300 requests on 12 parallel connections, spread over the children and their threads, are
    counted exactly once each."""
    from concurrent.futures import ThreadPoolExecutor
    h = httpd_factory(idp=idp, locations=LOCATIONS)
    s = browser_session()
    signin(h, s)
    cookies = requests.utils.dict_from_cookiejar(s.cookies)
    before = requests.get(h.url + "/sk-status?json").json()["all_processes"]

    def burst(_):
        with requests.Session() as one:
            one.trust_env = False
            return [one.get(h.url + "/dashboard/", cookies=cookies).status_code for _ in range(25)]

    with ThreadPoolExecutor(12) as pool:
        statuses = [st for part in pool.map(burst, range(12)) for st in part]
    assert statuses == [200] * 300
    after = requests.get(h.url + "/sk-status?json").json()["all_processes"]
    assert after["sessions_valid"] - before["sessions_valid"] == 300
    assert after["authn_requests"] - before["authn_requests"] == 300
    assert after["sessions_missing"] == before["sessions_missing"]
