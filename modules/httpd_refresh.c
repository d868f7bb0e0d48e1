/* httpd_refresh.c: refreshing a session, once, however many requests and
 * processes carry the same expired token at the same time.
 *
 * Scalekit rotates refresh tokens: the second use of one is refused and the
 * session is gone. So the first request to need a refresh leaves a "pending"
 * mark in httpd's shared object cache (shmcb, or the session store shared by
 * several servers) under a hash of the refresh token, makes the call, and
 * stores the answer there, sealed, for a minute; every other request with
 * the same token, in any process, waits for and reuses that answer. The
 * global mutex is held only around cache operations, never across the
 * network call. */
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

#define SK_RESULT_MAX     (64 * 1024)     /* sealed: two 16 KB tokens fit */
#define SK_KEEP_SUCCESS   apr_time_from_sec(60)
#define SK_KEEP_REFUSED   apr_time_from_sec(30)
#define SK_KEEP_UNREACHED apr_time_from_sec(2)
#define SK_POLL           apr_time_from_msec(20)
#define SK_LOSER_WAIT     apr_time_from_sec(3)

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
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "i");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "r");
    out->access_token = cJSON_IsString(a) ? apr_pstrdup(r->pool, a->valuestring) : NULL;
    out->id_token = cJSON_IsString(i) ? apr_pstrdup(r->pool, i->valuestring) : NULL;
    out->refresh_token = cJSON_IsString(f) ? apr_pstrdup(r->pool, f->valuestring) : NULL;
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
    if (sk_http_request(&c->rt->http, c->rt->token_url, body, &resp) != 0) {
        out->error = apr_psprintf(r->pool, "token endpoint unreachable: %s", resp.err);
        out->unavailable = 1;
        return;
    }
    if (sk_oauth_parse_token_response(r->pool, resp.status, resp.body, resp.len, &ts, &why)) {
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

void sk_refresh(request_rec *r, const char *refresh, sk_refresh_result *out)
{
    sk_server_conf *c = sk_server_config(r);
    const char *key = sk_hashed_key(r->pool, "r", refresh);
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
    apr_global_mutex_lock(sk_shared_store.mutex);
    sk_shared_put(r, key, sk_result_write(r, out), out->error ? (out->unavailable
                  ? SK_KEEP_UNREACHED : SK_KEEP_REFUSED) : SK_KEEP_SUCCESS);
    apr_global_mutex_unlock(sk_shared_store.mutex);
}
