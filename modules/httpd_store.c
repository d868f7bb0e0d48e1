/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_store.c: where a session's tokens live.
 *
 * By default in the browser's cookies (sk-access-token, sk-id-token,
 * sk-refresh-token). With ScalekitSessionStore PROVIDER[:ARGS] they live in an
 * httpd shared object cache (shmcb on one machine; redis or memcache across
 * machines), with ScalekitSessionStore redis://... in Redis through the
 * module's own client (httpd_redis.c: it authenticates), under a hash of an
 * opaque 256-bit session id, the only thing the browser holds. A back-channel
 * logout ends sessions on every server at once through "signed out at" marks
 * in the same store (httpd_signout.c). */
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
#include "sk_profile.h"

#define SK_RECORD_MAX  (48 * 1024)

/* ------------------------------------------------------------ set-up */

/* Called at check_config (so "apache2 -t" names a provider that is not loaded). */
const char *sk_store_check(apr_pool_t *p, const sk_server_conf *c)
{
    if (c->store_redis || c->store_password_set)
        return sk_redis_check(p, c);
    if (!c->store_provider)
        return NULL;
    if (!ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, c->store_provider,
                            AP_SOCACHE_PROVIDER_VERSION))
        return apr_psprintf(p, "mod_scalekit: ScalekitSessionStore %s: no such shared object "
                            "cache; load it first (LoadModule socache_%s_module, Debian: "
                            "a2enmod socache_%s)", c->store_provider, c->store_provider,
                            c->store_provider);
    return NULL;
}

/* ------------------------------------- an httpd shared object cache */

/* A store operation's status, counted when the store failed (scalekit-status
 * store_errors): not when a key is simply absent. */
static apr_status_t sk_store_counted(apr_status_t rv)
{
    if (rv != APR_SUCCESS && !APR_STATUS_IS_NOTFOUND(rv) && !APR_STATUS_IS_EEXIST(rv))
        sk_count(SK_C_STORE_ERROR);
    return rv;
}

static apr_status_t sk_socache_get(const sk_store *st, server_rec *s, const char *key,
                                   unsigned char *buf, unsigned int *len, apr_pool_t *p)
{
    return sk_store_counted(st->provider->retrieve(st->instance, s, (const unsigned char *)key,
                                                   (unsigned int)strlen(key), buf, len, p));
}

static apr_status_t sk_socache_put(const sk_store *st, server_rec *s, const char *key,
                                   const char *value, apr_time_t keep, apr_pool_t *p)
{
    return sk_store_counted(st->provider->store(st->instance, s, (const unsigned char *)key,
                                                (unsigned int)strlen(key), apr_time_now() + keep,
                                                (unsigned char *)value,
                                                (unsigned int)strlen(value), p));
}

static apr_status_t sk_socache_remove(const sk_store *st, server_rec *s, const char *key,
                                      apr_pool_t *p)
{
    return sk_store_counted(st->provider->remove(st->instance, s, (const unsigned char *)key,
                                                 (unsigned int)strlen(key), p));
}

const sk_store_ops sk_socache_ops = { sk_socache_get, sk_socache_put, sk_socache_remove, NULL };

apr_status_t sk_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                  sk_server_conf *c)
{
    struct ap_socache_hints hints = { 48, 4096, apr_time_from_sec(300) };
    if (!c->store_provider || c->store)
        return APR_SUCCESS;
    sk_store *st = apr_pcalloc(pconf, sizeof(*st));
    if (c->store_redis) {
        apr_status_t rv = sk_redis_post_config(pconf, s, c, st);
        if (rv == APR_SUCCESS)
            c->store = st;
        return rv;
    }
    const char *args = c->store_args;
    if (!args && !strcmp(c->store_provider, "shmcb"))      /* 512 KiB would hold ~150 */
        args = apr_psprintf(pconf, "%s(%d)", ap_runtime_dir_relative(pconf, apr_psprintf(pconf,
                            "scalekit-sessions-%s-%u", s->server_hostname ? s->server_hostname
                            : "main", s->port)), 32 * 1024 * 1024);
    const char *err = NULL;
    apr_status_t rv = sk_socache_open(s, pconf, ptemp, c->store_provider, args,
                                      "scalekit-sessions", &hints, &st->provider,
                                      &st->instance, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_scalekit: ScalekitSessionStore "
                     "%s: %s", c->store_provider, err ? err : "cannot initialise");
        return rv;
    }
    st->ops = &sk_socache_ops;
    st->not_mp_safe = (st->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) != 0;
    /* Written by other machines too: sign-out marks are polled (httpd_signout.c). */
    st->remote = strcmp(c->store_provider, "shmcb") != 0;
    /* Only shmcb: every writer of its records is on this machine. */
    st->copies = !strcmp(c->store_provider, "shmcb") && sk_store_copy_init(s);
    c->store = st;
    return APR_SUCCESS;
}

/* ---------------------------------------------------- record operations */

static void sk_store_lock(const sk_store *st)
{
    if (st->not_mp_safe && sk_shared_store.mutex)
        apr_global_mutex_lock(sk_shared_store.mutex);
}

static void sk_store_unlock(const sk_store *st)
{
    if (st->not_mp_safe && sk_shared_store.mutex)
        apr_global_mutex_unlock(sk_shared_store.mutex);
}

apr_status_t sk_store_get_small(request_rec *r, const sk_store *st, const char *key,
                               unsigned int max, char **out)
{
    unsigned char *buf = apr_palloc(r->pool, max + 1);
    unsigned int len = max;
    sk_store_lock(st);
    apr_status_t rv = st->ops->get(st, r->server, key, buf, &len, r->pool);
    sk_store_unlock(st);
    if (rv == APR_SUCCESS) {
        buf[len] = '\0';
        *out = (char *)buf;
    }
    return rv;
}

/* APR_SUCCESS with *out, APR_NOTFOUND, or another status when the store failed. */
apr_status_t sk_store_get(request_rec *r, const sk_store *st, const char *key, char **out)
{
    return sk_store_get_small(r, st, key, SK_RECORD_MAX, out);
}

apr_status_t sk_store_put(request_rec *r, const sk_store *st, const char *key,
                                 const char *value, apr_time_t keep)
{
    sk_store_lock(st);
    apr_status_t rv = st->ops->put(st, r->server, key, value, keep, r->pool);
    sk_store_unlock(st);
    if (st->copies)                     /* after the write: see httpd_store_copy.c */
        sk_store_copy_bump(key);
    if (rv != APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "session store: cannot write a record");
    return rv;
}

static void sk_store_remove(request_rec *r, const sk_store *st, const char *key)
{
    sk_store_lock(st);
    st->ops->remove(st, r->server, key, r->pool);
    sk_store_unlock(st);
    if (st->copies)
        sk_store_copy_bump(key);
}

/* The store's key for a session id: never the id itself, so that reading the
 * store gives no cookie to replay. */
static const char *sk_session_key(apr_pool_t *p, const char *session_id)
{
    return sk_hashed_key(p, "s", session_id);
}

/* A record is sealed (AES-256-GCM, a key derived from the client secret) and
 * bound to the store key it lives under: whoever can read the store sees no
 * token, and whoever can write it can neither forge a session nor move one
 * to another session id. Inside: {"a","i","r": the tokens, "v": until when a
 * server of this store verified their signatures, "e": when the record
 * expires}. */
static int sk_record_read(request_rec *r, const char *key, const char *sealed, sk_tokens *t)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    size_t len = 0;
    char *text = sk_unseal_bound(r->pool, rt->record_sealer, key, sealed, SK_RECORD_MAX, &len);
    if (!text) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "session store: a record does not open "
                      "(altered, or sealed by a server with another client secret): "
                      "session refused");
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "v");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "e");
    t->access = sk_json_string(r->pool, j, "a");
    t->id = sk_json_string(r->pool, j, "i");
    t->refresh = sk_json_string(r->pool, j, "r");
    t->vouched = cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e12
                 ? (int64_t)v->valuedouble : 0;
    t->expires = cJSON_IsNumber(e) && e->valuedouble > 0 && e->valuedouble < 1e12
                 ? (int64_t)e->valuedouble : 0;
    cJSON_Delete(j);
    return t->access || t->refresh;
}

static char *sk_record_write(request_rec *r, const char *key, const sk_tokens *t)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    cJSON *j = cJSON_CreateObject();
    if (t->access)
        cJSON_AddStringToObject(j, "a", t->access);
    if (t->id)
        cJSON_AddStringToObject(j, "i", t->id);
    if (t->refresh)
        cJSON_AddStringToObject(j, "r", t->refresh);
    if (t->vouched > 0)
        cJSON_AddNumberToObject(j, "v", (double)t->vouched);
    cJSON_AddNumberToObject(j, "e", (double)t->expires);
    char *text = cJSON_PrintUnformatted(j);
    char *out = text ? sk_seal_bound(r->pool, rt->record_sealer, key, text, strlen(text))
                     : NULL;
    cJSON_free(text);
    cJSON_Delete(j);
    return out;
}

/* ---------------------------------------------------------- the API */

int sk_tokens_load(request_rec *r, sk_tokens *t)
{
    sk_server_conf *c = sk_server_config(r);
    memset(t, 0, sizeof(*t));
    if (!c->store) {
        const char *names[4] = { c->cookie_access, c->cookie_id, c->cookie_refresh,
                                 c->cookie_profile };
        const char *values[4];
        sk_request_cookies(r, names, values, 4);
        t->access = values[0];
        t->id = values[1];
        t->refresh = values[2];
        t->profile = values[3];
        return OK;
    }
    const char *sid;
    sk_request_cookies(r, &c->cookie_session, &sid, 1);
    if (!sid || strlen(sid) > 128)
        return OK;
    if (c->store->copies && (!c->store->redis || sk_redis_copies_live(c->store))
        && sk_store_copy_get(r, c->store, sid, t)) {
        sk_count(SK_C_STORE_COPY);
        return OK;
    }
    t->key = sk_session_key(r->pool, sid);
    sk_count(SK_C_STORE_READ);          /* beside store_copies_used: the copies' hit ratio */
    apr_uint32_t epoch = c->store->copies ? sk_store_copy_epoch(t->key) : 0;
    char *text = NULL;
    apr_status_t rv = sk_store_get(r, c->store, t->key, &text);
    if (rv == APR_SUCCESS && sk_record_read(r, t->key, text, t)) {
        if (c->store->copies)
            sk_store_copy_put(c->store, sid, epoch, t);
        return OK;
    }
    if (rv == APR_SUCCESS || APR_STATUS_IS_NOTFOUND(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session %s is not in the store "
                      "(ended or expired)", sk_short_hash(r->pool, sid));
        t->key = NULL;
        t->gone = 1;
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "session store (%s) unavailable",
                  c->store_provider);
    t->key = NULL;
    t->store_failed = 1;
    return c->store_failure_login ? OK
         : sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Sessions unavailable",
                         "The session store did not answer. Please try again shortly.");
}

/* Browsers keep a cookie of at most 4096 bytes (name and value) and drop a
 * bigger one without a word: the user would sign in again and again. */
#define SK_COOKIE_MAX 4096

static int sk_cookie_fits(request_rec *r, const char *name, const char *value)
{
    size_t size = strlen(name) + (value ? strlen(value) : 0) + 1;
    if (size <= SK_COOKIE_MAX)
        return 1;
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "a token is too large for the cookie %s "
                  "(%" APR_SIZE_T_FMT " bytes, browsers keep %d): use ScalekitSessionStore",
                  name, size, SK_COOKIE_MAX);
    return 0;
}

/* The ID token and profile cookies of a sign-in or refresh, where the ID
 * token goes to the sign-in handler's path only. A new or carried ID token
 * (one the browser still holds at "/", signed in before the move) is written
 * there, and a profile sealed from its verified claims. When the request
 * came with an ID cookie, one at "/" may be among them: it is cleared first
 * (a jar keyed by name alone then keeps the new one). Without an ID token (a
 * refresh on a protected path, where the browser does not send it, answered
 * without a new one) both cookies stay as the browser has them. */
static void sk_id_cookies_save(request_rec *r, const sk_tokens *t, const char *path,
                               const char *profile)
{
    sk_server_conf *c = sk_server_config(r);
    if (!t->id)
        return;
    if (sk_request_cookie(r, c->cookie_id))
        sk_set_cookie(r, c->cookie_id, NULL, SK_COOKIE_CLEAR);
    sk_set_cookie_at(r, c->cookie_id, t->id, SK_COOKIE_SESSION, path);
    sk_set_cookie(r, c->cookie_profile, profile, profile ? SK_COOKIE_SESSION : SK_COOKIE_CLEAR);
}

int sk_tokens_save(request_rec *r, sk_tokens *t)
{
    sk_server_conf *c = sk_server_config(r);
    if (!c->store) {
        const char *id_path = c->rt->id_cookie_path;
        const char *profile = id_path && t->id && t->id_claims
                              ? sk_profile_seal(r->pool, c->rt->sealer, t->id_claims) : NULL;
        if (!sk_cookie_fits(r, c->cookie_access, t->access)
            || !sk_cookie_fits(r, c->cookie_id, t->id)
            || !sk_cookie_fits(r, c->cookie_refresh, t->refresh)
            || !sk_cookie_fits(r, c->cookie_profile, profile))
            return sk_error_page(r, HTTP_INTERNAL_SERVER_ERROR, "Sign-in cannot be kept",
                                 "The session is too large for this site's cookies.");
        /* A token the IdP did not give is cleared, not left behind: a refresh
         * cookie of the browser's previous user would later refresh into them. */
        sk_set_cookie(r, c->cookie_access, t->access, SK_COOKIE_SESSION);
        if (!id_path)
            sk_set_cookie(r, c->cookie_id, t->id, t->id ? SK_COOKIE_SESSION : SK_COOKIE_CLEAR);
        else
            sk_id_cookies_save(r, t, id_path, profile);
        sk_set_cookie(r, c->cookie_refresh, t->refresh,
                      t->refresh ? SK_COOKIE_SESSION : SK_COOKIE_CLEAR);
        return OK;
    }
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    int fresh = !t->key;
    /* ScalekitSessionMaxAge counts from the sign-in: a refresh keeps the end
     * its record has (a record from before "e" gets a whole new age). */
    if (fresh || t->expires <= now)
        t->expires = now + c->session_max_age;
    apr_time_t keep = apr_time_from_sec(t->expires - now);
    const char *session_id = NULL;
    if (fresh) {
        session_id = sk_random_b64url(r->pool, 32);
        t->key = sk_session_key(r->pool, session_id);
    }
    const char *record = sk_record_write(r, t->key, t);
    if (!record || sk_store_put(r, c->store, t->key, record, keep) != APR_SUCCESS)
        return sk_error_page(r, HTTP_SERVICE_UNAVAILABLE, "Sessions unavailable",
                             "The session store did not answer. Please try again shortly.");
    if (fresh)
        sk_set_cookie(r, c->cookie_session, session_id, SK_COOKIE_SESSION);
    return OK;
}

void sk_tokens_clear(request_rec *r, const sk_tokens *t)
{
    sk_server_conf *c = sk_server_config(r);
    if (c->store) {
        if (t->key)
            sk_store_remove(r, c->store, t->key);
        sk_set_cookie(r, c->cookie_session, NULL, SK_COOKIE_CLEAR);
    }
    sk_clear_session_cookies(r);
}

int sk_is_session_ended(request_rec *r, const sk_tokens *t)
{
    sk_server_conf *c = sk_server_config(r);
    char *text = NULL;
    return c->store && t->key && sk_store_get(r, c->store, t->key, &text) == APR_NOTFOUND;
}

/* After a refused refresh: another server may have refreshed this session
 * first (the old refresh token is then spent). The store has the answer. */
int sk_tokens_reload(request_rec *r, sk_tokens *t, const char *spent_refresh)
{
    sk_server_conf *c = sk_server_config(r);
    char *text = NULL;
    sk_tokens now = { 0 };
    if (!c->store || !t->key || sk_store_get(r, c->store, t->key, &text) != APR_SUCCESS
        || !sk_record_read(r, t->key, text, &now) || !now.refresh
        || !strcmp(now.refresh, spent_refresh))
        return 0;
    now.key = t->key;
    *t = now;
    return 1;
}

/* A logout token's jti, remembered until it could no longer be accepted. */
int sk_store_jti_seen(request_rec *r, const char *jti, apr_time_t keep)
{
    const sk_store *st = sk_signout_store(sk_server_config(r));
    const char *key = sk_hashed_key(r->pool, "jti", jti);
    char *v = NULL;
    if (!st || sk_store_get_small(r, st, key, 8, &v) == APR_SUCCESS)
        return 1;
    sk_store_put(r, st, key, "1", keep);
    return 0;
}
