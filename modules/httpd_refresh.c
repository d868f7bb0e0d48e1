/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_refresh.c: refreshing a session, once, however many requests and
 * processes carry the same expired token at the same time.
 *
 * Scalekit rotates refresh tokens: the second use of one is refused and the
 * session is gone. So the first request to need a refresh leaves a "pending"
 * mark in httpd's shared object cache (shmcb, or the session store shared by
 * several servers) under a hash of the refresh token, makes the call, and
 * stores the answer there, sealed; every other request with the same token,
 * in any process, waits for and reuses that answer. The global mutex is held
 * only around cache operations, never across the network call.
 *
 * With cookie sessions the refresh token comes from the browser, so the
 * answer is keyed (and its seal bound) to the refresh token and the expired
 * access token together, and kept only SK_KEEP_BOUND: long enough for the
 * requests in flight with the old cookies, not for a copy of the rotated
 * refresh token presented later, which must reach Scalekit (and its reuse
 * detection) instead of the new tokens. Refusals are remembered too (see
 * sk_refresh_gate): a refresh that failed is not tried again for the same
 * refresh token or session for SK_FAIL_MARK, and at most SK_FAIL_BUDGET
 * refreshes may fail per SK_FAIL_WINDOW on this machine before refreshes wait
 * (a 502) instead of calling Scalekit. */
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "apr_strings.h"
#include <cjson/cJSON.h>

#include "sk_module.h"
#include "sk_oauth.h"
#include "sk_json.h"

#define SK_RESULT_MAX     (64 * 1024)     /* sealed: two 16 KB tokens fit */
#define SK_KEEP_SUCCESS   apr_time_from_sec(60)
#define SK_KEEP_REFUSED   apr_time_from_sec(30)
#define SK_KEEP_UNREACHED apr_time_from_sec(2)
#define SK_POLL           apr_time_from_msec(20)
#define SK_LOSER_WAIT     apr_time_from_sec(3)
#define SK_KEEP_BOUND     apr_time_from_sec(15)   /* cookie sessions: answers and refusals */
#define SK_FAIL_MARK      60                      /* s: no retry of a failed refresh */
#define SK_FAIL_WINDOW    60                      /* s: the server-wide budget's interval */
#define SK_FAIL_BUDGET    60                      /* failed refreshes per window */

/* Where refresh records go: the session store when there is one (so that
 * servers sharing sessions also share the pending mark and the answer), else
 * this machine's shmcb, as a store of its own (cache). Operations run under
 * the global mutex. */
static const sk_store *sk_refresh_cache(request_rec *r, sk_store *cache)
{
    sk_server_conf *c = sk_server_config(r);
    if (c->store)
        return c->store;
    *cache = (sk_store){ .ops = &sk_socache_ops, .provider = sk_shared_store.provider,
                         .instance = sk_shared_store.instance };
    return cache;
}

/* Records are sealed like session records and bound to their key: an answer
 * holds live tokens, and whoever can read or write the store (or attach the
 * shmcb segment) must learn none and plant none. One that does not open is
 * no record. buf holds SK_RESULT_MAX + 1 bytes: one buffer for every poll. */
static char *sk_shared_get(request_rec *r, const char *key, unsigned char *buf)
{
    sk_store cache;
    const sk_store *st = sk_refresh_cache(r, &cache);
    unsigned int len = SK_RESULT_MAX;
    if (st->ops->get(st, r->server, key, buf, &len, r->pool) != APR_SUCCESS)
        return NULL;
    buf[len] = '\0';
    char *plain = sk_unseal_bound(r->pool, sk_server_config(r)->rt->record_sealer, key,
                                  (const char *)buf, SK_RESULT_MAX, NULL);
    if (!plain || !*plain)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refresh record %.8s... does not open: "
                      "ignored", key);
    return plain && *plain ? plain : NULL;
}

/* Write a record; with add, only where there is none (APR_EEXIST then). */
static apr_status_t sk_shared_write(request_rec *r, const char *key, const char *value,
                                    apr_time_t keep, int add)
{
    sk_store cache;
    const sk_store *st = sk_refresh_cache(r, &cache);
    char *sealed = sk_seal_bound(r->pool, sk_server_config(r)->rt->record_sealer, key, value,
                                 strlen(value));
    apr_status_t rv = !sealed ? APR_EGENERAL : strlen(sealed) > SK_RESULT_MAX ? APR_ENOSPC
        : add ? st->ops->add(st, r->server, key, sealed, keep, r->pool)
        : st->ops->put(st, r->server, key, sealed, keep, r->pool);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv))
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "mod_scalekit: the shared cache "
                      "refused a refresh record");
    return rv;
}

static void sk_shared_put(request_rec *r, const char *key, const char *value,
                          apr_time_t keep)
{
    sk_shared_write(r, key, value, keep, 0);
}

/* A store that adds atomically (Redis: SET NX) leaves the pending mark in
 * one step, for every server sharing it: 1 when this request left it. */
static int sk_shared_claim(request_rec *r, const char *key, apr_time_t keep)
{
    sk_store cache;
    const sk_store *st = sk_refresh_cache(r, &cache);
    return st->ops->add && sk_shared_write(r, key, "P", keep, 1) == APR_SUCCESS;
}

/* Read a stored answer: "R" + JSON tokens, or "F" / "U" + reason. */
static void sk_result_read(request_rec *r, const char *v, sk_refresh_result *out)
{
    memset(out, 0, sizeof(*out));
    if (v[0] != 'R') {
        out->error = apr_pstrdup(r->pool, v + 1);
        out->unavailable = v[0] == 'U';
        return;
    }
    cJSON *j = cJSON_Parse(v + 1);
    out->access_token = sk_json_string(r->pool, j, "a");    /* written below, never empty */
    out->id_token = sk_json_string(r->pool, j, "i");
    out->refresh_token = sk_json_string(r->pool, j, "r");
    cJSON_Delete(j);
    if (!out->access_token)
        out->error = "stored refresh answer is unreadable";
}

static char *sk_result_write(request_rec *r, const sk_refresh_result *res)
{
    if (res->error)
        return apr_pstrcat(r->pool, res->unavailable ? "U" : "F", res->error, NULL);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "a", res->access_token);
    if (res->id_token)
        cJSON_AddStringToObject(j, "i", res->id_token);
    if (res->refresh_token)
        cJSON_AddStringToObject(j, "r", res->refresh_token);
    char *text = cJSON_PrintUnformatted(j);
    char *out = apr_pstrcat(r->pool, "R", text, NULL);
    cJSON_free(text);
    cJSON_Delete(j);
    return out;
}

/* The call itself: POST ENV/oauth/token grant_type=refresh_token. */
static void sk_refresh_call(request_rec *r, const char *refresh, sk_refresh_result *out)
{
    sk_server_conf *c = sk_server_config(r);
    sk_http_resp resp;
    sk_token_set ts;
    const char *why;
    memset(out, 0, sizeof(*out));
    const char *body = sk_oauth_refresh_body(r->pool, c->client_id, c->client_secret, refresh);
    if (sk_http_request(&c->rt->http, c->rt->token_url, body, &resp) != APR_SUCCESS) {
        out->error = apr_psprintf(r->pool, "token endpoint unreachable: %s", resp.err);
        out->unavailable = 1;
        return;
    }
    if (sk_oauth_parse_token_response(r->pool, resp.status, resp.body, resp.len, &ts, &why)
        != APR_SUCCESS) {
        out->error = apr_pstrcat(r->pool, "token endpoint: ", why, NULL);
        out->unavailable = resp.status >= 500 || resp.status == 200 || resp.status == 429;
    } else {
        out->access_token = ts.access_token;
        out->id_token = ts.id_token;
        out->refresh_token = ts.refresh_token;
    }
    sk_http_resp_free(&resp);
}

/* Wait while key holds a pending mark: the answer, or NULL when there is
 * none (with claim, this request then leaves its own mark, under the lock)
 * or when until passed (*late). */
static const char *sk_await(request_rec *r, const char *key, unsigned char *buf,
                            apr_time_t until, int claim, int *late)
{
    sk_server_conf *c = sk_server_config(r);
    *late = 0;
    apr_time_t keep = apr_time_from_sec(c->timeout + 3);
    for (;;) {
        apr_global_mutex_lock(sk_shared_store.mutex);
        if (claim && sk_shared_claim(r, key, keep)) {
            apr_global_mutex_unlock(sk_shared_store.mutex);
            return NULL;
        }
        const char *v = sk_shared_get(r, key, buf);
        if (!v && claim)
            sk_shared_put(r, key, "P", keep);
        apr_global_mutex_unlock(sk_shared_store.mutex);
        if (!v || v[0] != 'P')
            return v;
        if ((*late = apr_time_now() > until))
            return NULL;
        apr_sleep(SK_POLL);
    }
}

/* A store shared by several machines makes the pending mark a read then a
 * write with no lock between them (but for Redis of our own, which adds it
 * at once; the mark may still expire under a slow call), so two servers can
 * both call. The IdP
 * refuses the second; its winner's answer is then on the way to the store.
 * Wait a little for it rather than end the session (and overwrite the
 * answer with the refusal, ending it for every waiting request too). */
static int sk_winner_answer(request_rec *r, const char *key, unsigned char *buf,
                            sk_refresh_result *out)
{
    sk_server_conf *c = sk_server_config(r);
    int late;
    if (!c->store || c->store->not_mp_safe)
        return 0;                           /* one machine: the mark was atomic */
    const char *v = sk_await(r, key, buf, apr_time_now() + SK_LOSER_WAIT, 0, &late);
    if (!v || v[0] != 'R')
        return 0;
    sk_result_read(r, v, out);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "refresh %s: another server refreshed "
                  "first; its answer is used", sk_short_hash(r->pool, key));
    return 1;
}

void sk_refresh(request_rec *r, const char *refresh, const char *bind, sk_refresh_result *out)
{
    sk_server_conf *c = sk_server_config(r);
    /* The key is the seal's binding too: only the same pair opens the answer. */
    const char *key = sk_hashed_key(r->pool, "r", bind ? apr_pstrcat(r->pool, refresh, "\n",
                                                                     bind, NULL) : refresh);
    unsigned char *buf = apr_palloc(r->pool, SK_RESULT_MAX + 1);
    int late;
    const char *v = sk_await(r, key, buf, apr_time_now() + apr_time_from_sec(c->timeout + 2),
                             1, &late);
    if (late) {
        memset(out, 0, sizeof(*out));
        out->error = "a parallel refresh did not finish in time";
        out->unavailable = 1;
        return;
    }
    if (v) {
        sk_result_read(r, v, out);
        out->reused = 1;
        sk_count(SK_C_REFRESH_REUSED);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "refresh %s: reused the answer "
                      "of a parallel request", sk_short_hash(r->pool, refresh));
        return;
    }
    sk_refresh_call(r, refresh, out);
    if (out->access_token && !out->refresh_token)
        out->refresh_token = refresh;       /* no rotation offered: keep the old one */
    if (out->error && !out->unavailable && sk_winner_answer(r, key, buf, out))
        return;
    apr_time_t keep = out->error ? (out->unavailable ? SK_KEEP_UNREACHED : SK_KEEP_REFUSED)
                                 : SK_KEEP_SUCCESS;
    if (bind && keep > SK_KEEP_BOUND)
        keep = SK_KEEP_BOUND;
    apr_global_mutex_lock(sk_shared_store.mutex);
    sk_shared_put(r, key, sk_result_write(r, out), keep);
    apr_global_mutex_unlock(sk_shared_store.mutex);
}

/* ------------------------------------------- failed refreshes, limited
 *
 * Small unsealed records in this machine's shmcb (they hold no secret): a
 * mark per refresh token and per session whose refresh failed, and the
 * budget "<start> <count>" of failures in the current window. */

static const char *sk_fail_key(request_rec *r, const char *what, const char *value)
{
    return sk_hashed_key(r->pool, what, value);
}

/* The record under key, NUL-terminated, or NULL (lock held). */
static char *sk_small_get(request_rec *r, const char *key)
{
    sk_shared *sh = &sk_shared_store;
    unsigned char buf[64];
    unsigned int len = sizeof(buf) - 1;
    if (sh->provider->retrieve(sh->instance, r->server, (const unsigned char *)key,
                               (unsigned int)strlen(key), buf, &len, r->pool) != APR_SUCCESS)
        return NULL;
    buf[len] = '\0';
    return apr_pstrdup(r->pool, (const char *)buf);
}

static void sk_small_put(request_rec *r, const char *key, const char *value, apr_time_t until)
{
    sk_shared *sh = &sk_shared_store;
    apr_status_t rv = sh->provider->store(sh->instance, r->server, (const unsigned char *)key,
                                          (unsigned int)strlen(key), until,
                                          (unsigned char *)value, (unsigned int)strlen(value),
                                          r->pool);
    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, "mod_scalekit: the shared cache "
                      "refused a failed-refresh record");
}

/* The failures counted in the window that is open at now (lock held);
 * *start is when it opened (now when none is). */
static long sk_budget_read(request_rec *r, const char *key, apr_int64_t now,
                           apr_int64_t *start)
{
    char *v = sk_small_get(r, key), *end = NULL;
    long n = 0;
    *start = now;
    if (v) {
        apr_int64_t s = apr_strtoi64(v, &end, 10);
        if (end && *end == ' ' && s <= now && now - s < SK_FAIL_WINDOW) {
            *start = s;
            n = strtol(end + 1, NULL, 10);
        }
    }
    return n;
}

static const char *sk_budget_key(request_rec *r)
{
    return sk_fail_key(r, "b", "refresh failures");
}

sk_refresh_limit sk_refresh_limited(request_rec *r, const char *refresh, const char *session)
{
    apr_int64_t now = apr_time_sec(apr_time_now()), start;
    const char *marks[2] = { sk_fail_key(r, "f", refresh), sk_fail_key(r, "g", session) };
    sk_refresh_limit limit = SK_LIMIT_NONE;
    apr_global_mutex_lock(sk_shared_store.mutex);
    for (int i = 0; i < 2 && !limit; i++)
        if (sk_small_get(r, marks[i]))
            limit = SK_LIMIT_SESSION;
    if (!limit && sk_budget_read(r, sk_budget_key(r), now, &start) >= SK_FAIL_BUDGET)
        limit = SK_LIMIT_SERVER;
    apr_global_mutex_unlock(sk_shared_store.mutex);
    return limit;
}

void sk_refresh_failed(request_rec *r, const char *refresh, const char *session, int called)
{
    apr_time_t now = apr_time_now();
    apr_int64_t sec = apr_time_sec(now), start;
    apr_time_t until = now + apr_time_from_sec(SK_FAIL_MARK);
    const char *budget = sk_budget_key(r);
    apr_global_mutex_lock(sk_shared_store.mutex);
    sk_small_put(r, sk_fail_key(r, "f", refresh), "1", until);
    sk_small_put(r, sk_fail_key(r, "g", session), "1", until);
    if (called) {                       /* a reused refusal cost Scalekit nothing */
        long n = sk_budget_read(r, budget, sec, &start) + 1;
        sk_small_put(r, budget, apr_psprintf(r->pool, "%" APR_INT64_T_FMT " %ld", start, n),
                     apr_time_from_sec(start + SK_FAIL_WINDOW));
    }
    apr_global_mutex_unlock(sk_shared_store.mutex);
}
