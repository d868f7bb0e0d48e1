/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_status.c: counters, and SetHandler scalekit-status to read them.
 *
 * Counters of the httpd side live in one anonymous shared-memory segment made
 * before the children fork, so the page shows the whole server; the
 * validation engine's own figures (cache, key store) are per process and are
 * shown for the process that answers. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "httpd.h"
#include "http_main.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "apr_shm.h"
#include "apr_atomic.h"
#include "apr_strings.h"

#include "sk_module.h"

static const char *const sk_counter_names[SK_C__COUNT] = {
    "authn_requests", "sessions_valid", "sessions_missing", "bearer_requests",
    "refreshes", "refresh_failures", "refresh_reused", "logins_started", "callbacks_ok",
    "callbacks_refused", "logouts", "forbidden", "store_copies_used", "refresh_refused",
    "refresh_limited", "refreshes_ok", "jwks_fetches", "jwks_fetch_failures", "store_reads",
    "store_errors", "session_memo_hits",
};

/* Every counter lives in SK_SHARDS copies, each thread adding to one picked
 * at its first count (threads may share one). One copy written by every
 * request on both cores, by every child, made each increment a cross-core
 * cache line transfer. Readers add the copies up. */
#define SK_SHARDS 64
#define SK_SLOTS (SK_C__COUNT + SK_JWT_E__COUNT)
#define SK_SHARD_WORDS ((SK_SLOTS + 15) / 16 * 16)      /* whole 64-byte lines */

static apr_uint32_t *sk_counters;             /* shared; NULL before post_config */
static apr_uint32_t sk_failures_local[SK_JWT_E__COUNT];
static __thread int sk_my_shard = -1;

/* Spread over the processes too: thread 1 of every child must not share. */
static apr_uint32_t *sk_shard(void)
{
    if (sk_my_shard < 0)
        sk_my_shard = (int)(((unsigned)getpid() * 7u + sk_thread_number()) % SK_SHARDS);
    return sk_counters + sk_my_shard * SK_SHARD_WORDS;
}

void sk_count(sk_counter c)
{
    if (sk_counters)
        apr_atomic_inc32(&sk_shard()[c]);
}

void sk_count_failure(sk_jwt_err e)
{
    if (e <= SK_JWT_OK || e >= SK_JWT_E__COUNT)
        return;
    apr_atomic_inc32(sk_counters ? &sk_shard()[SK_C__COUNT + e] : &sk_failures_local[e]);
}

/* The counters live in the process pool, found again by name on every
 * generation: a graceful restart keeps them (the name carries the size, so a
 * module with other counters gets a segment of its own). */
apr_status_t sk_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_size_t size = sizeof(apr_uint32_t) * SK_SHARD_WORDS * SK_SHARDS + 64;
    const char *tag = apr_psprintf(pconf, "mod_scalekit counters %" APR_SIZE_T_FMT, size);
    void *found = sk_process_shm(s, tag, size);
    if (!found) {
        sk_counters = NULL;             /* scalekit-status then shows this process only */
        return APR_SUCCESS;
    }
    /* apr_shm's base follows a size header: shards start on a line of their own. */
    sk_counters = (apr_uint32_t *)(((uintptr_t)found + 63) & ~(uintptr_t)63);
    return APR_SUCCESS;
}

/* Counter slot i (a counter, or SK_C__COUNT + a refusal) over all shards. */
static apr_uint32_t sk_read_slot(int i)
{
    if (!sk_counters)
        return i < SK_C__COUNT ? 0 : sk_failures_local[i - SK_C__COUNT];
    apr_uint32_t sum = 0;
    for (int k = 0; k < SK_SHARDS; k++)
        sum += apr_atomic_read32(&sk_counters[k * SK_SHARD_WORDS + i]);
    return sum;
}

/* A counter as the status page shows it. */
static apr_uint32_t sk_read(int i)
{
    /* Not counted, one increment a request less: authn is valid + missing, and
     * valid counts the memo's sessions apart. */
    if (i == SK_C_AUTHN)
        return sk_read(SK_C_VALID) + sk_read(SK_C_MISSING);
    if (i == SK_C_VALID)
        return sk_read_slot(SK_C_VALID) + sk_read_slot(SK_C_MEMO);
    return sk_read_slot(i);
}

/* Engine figures of this process, summed over the servers that use Scalekit. */
static void sk_engine_stats(server_rec *s, sk_validator_stats *v, sk_keystore_stats *k)
{
    memset(v, 0, sizeof(*v));
    memset(k, 0, sizeof(*k));
    for (; s; s = s->next) {
        sk_server_conf *c = ap_get_module_config(s->module_config, &scalekit_module);
        if (!c->rt)
            continue;
        sk_validator_stats a;
        sk_keystore_stats ks;
        for (int which = 0; which < 2; which++) {
            sk_validator_get_stats(which ? c->rt->id : c->rt->access, &a);
            v->validations += a.validations;
            v->cache_hits += a.cache_hits;
            v->cache_entries += a.cache_entries;
            v->evictions += a.evictions;
        }
        sk_keystore_get_stats(c->rt->keys, &ks);
        k->fetches += ks.fetches;
        k->fetch_failures += ks.fetch_failures;
        k->keys += ks.keys;
    }
}

static void sk_status_text(request_rec *r, const sk_validator_stats *v,
                           const sk_keystore_stats *k)
{
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rprintf(r, "mod_scalekit status\n\nall processes:\n");
    for (int i = 0; i < SK_C__COUNT; i++)
        ap_rprintf(r, "  %-20s %u\n", sk_counter_names[i],
                   sk_read(i));
    ap_rprintf(r, "  token refusals:\n");
    for (int i = 1; i < SK_JWT_E__COUNT; i++)
        ap_rprintf(r, "    %-18s %u\n", sk_jwt_err_str((sk_jwt_err)i), sk_read(SK_C__COUNT + i));
    ap_rprintf(r, "\nthis process (pid %" APR_PID_T_FMT "):\n", getpid());
    ap_rprintf(r, "  %-20s %" APR_UINT64_T_FMT "\n  %-20s %" APR_UINT64_T_FMT "\n"
               "  %-20s %" APR_UINT64_T_FMT "\n  %-20s %" APR_UINT64_T_FMT "\n"
               "  %-20s %" APR_UINT64_T_FMT "\n  %-20s %" APR_UINT64_T_FMT "\n",
               "validations", v->validations, "cache_hits", v->cache_hits,
               "cache_entries", v->cache_entries, "jwks_fetches", k->fetches,
               "jwks_fetch_failures", k->fetch_failures, "signing_keys", k->keys);
}

static void sk_status_json(request_rec *r, const sk_validator_stats *v,
                           const sk_keystore_stats *k)
{
    cJSON *out = cJSON_CreateObject(), *all = cJSON_AddObjectToObject(out, "all_processes");
    for (int i = 0; i < SK_C__COUNT; i++)
        cJSON_AddNumberToObject(all, sk_counter_names[i],
                                sk_read(i));
    cJSON *fail = cJSON_AddObjectToObject(all, "token_refusals");
    for (int i = 1; i < SK_JWT_E__COUNT; i++)
        cJSON_AddNumberToObject(fail, sk_jwt_err_str((sk_jwt_err)i), sk_read(SK_C__COUNT + i));
    cJSON *me = cJSON_AddObjectToObject(out, "this_process");
    cJSON_AddNumberToObject(me, "pid", getpid());
    cJSON_AddNumberToObject(me, "validations", (double)v->validations);
    cJSON_AddNumberToObject(me, "cache_hits", (double)v->cache_hits);
    cJSON_AddNumberToObject(me, "cache_entries", (double)v->cache_entries);
    cJSON_AddNumberToObject(me, "jwks_fetches", (double)k->fetches);
    cJSON_AddNumberToObject(me, "jwks_fetch_failures", (double)k->fetch_failures);
    cJSON_AddNumberToObject(me, "signing_keys", (double)k->keys);
    char *text = cJSON_PrintUnformatted(out);
    ap_set_content_type(r, "application/json");
    ap_rputs(text, r);
    ap_rputs("\n", r);
    cJSON_free(text);
    cJSON_Delete(out);
}

/* ------------------------------------------------ Prometheus text format
 *
 * The text exposition format 0.0.4, for a fleet's scraper: the server-wide
 * counters as metric families named by Prometheus' conventions (what is
 * counted in the name, a label for the outcome), the engine's figures of the
 * process that answered under a pid label. */

typedef struct {
    sk_counter c;
    const char *value;                  /* the label's value; NULL: no label */
} sk_prom_sample;

typedef struct {
    const char *name, *help, *label;    /* label: its name, NULL when none */
    sk_prom_sample samples[4];          /* until one with c == SK_C__COUNT */
} sk_prom_family;

#define SK_END { SK_C__COUNT, NULL }
static const sk_prom_family sk_prom_families[] = {
    { "scalekit_requests_total", "Requests to AuthType Scalekit locations, by session: valid, "
      "or missing (none, ended, or its tokens refused).", "result",
      { { SK_C_VALID, "valid" }, { SK_C_MISSING, "missing" }, SK_END } },
    { "scalekit_bearer_requests_total", "Requests that carried an Authorization: Bearer token "
      "(counted in scalekit_requests_total too).", NULL, { { SK_C_BEARER, NULL }, SK_END } },
    { "scalekit_refreshes_total", "Expired sessions: refreshed (ok), refresh failed (failed), "
      "or no refresh tried: its tokens not trusted (refused) or refreshes failed lately "
      "(limited).", "result",
      { { SK_C_REFRESH_OK, "ok" }, { SK_C_REFRESH_FAIL, "failed" },
        { SK_C_REFRESH_REFUSED, "refused" }, { SK_C_REFRESH_LIMITED, "limited" } } },
    { "scalekit_refreshes_reused_total", "Refreshes (ok or failed) that took a parallel "
      "request's answer instead of calling the token endpoint.", NULL,
      { { SK_C_REFRESH_REUSED, NULL }, SK_END } },
    { "scalekit_logins_total", "Sign-ins started (redirects to the authorization endpoint).",
      NULL, { { SK_C_LOGIN, NULL }, SK_END } },
    { "scalekit_callbacks_total", "Sign-in callbacks: a session made (ok), or refused for a "
      "missing, unknown or altered state (refused).", "result",
      { { SK_C_CALLBACK_OK, "ok" }, { SK_C_CALLBACK_REFUSED, "refused" }, SK_END } },
    { "scalekit_logouts_total", "Sign-outs through the handler.", NULL,
      { { SK_C_LOGOUT, NULL }, SK_END } },
    { "scalekit_forbidden_total", "Signed-in requests refused by a Require rule (403).", NULL,
      { { SK_C_FORBIDDEN, NULL }, SK_END } },
    { "scalekit_jwks_fetches_total", "Signing key set downloads from the identity provider, "
      "all processes.", NULL, { { SK_C_JWKS_FETCH, NULL }, SK_END } },
    { "scalekit_jwks_fetch_failures_total", "Signing key set downloads that failed "
      "(unreachable, or not a 200).", NULL, { { SK_C_JWKS_FETCH_FAIL, NULL }, SK_END } },
    { "scalekit_store_reads_total", "Session records read from ScalekitSessionStore.", NULL,
      { { SK_C_STORE_READ, NULL }, SK_END } },
    { "scalekit_store_copies_used_total", "Session records taken from a process's copy "
      "instead of the store (hit ratio: copies_used / (copies_used + reads)).", NULL,
      { { SK_C_STORE_COPY, NULL }, SK_END } },
    { "scalekit_store_errors_total", "Session store operations that failed (not answered, "
      "refused, timed out).", NULL, { { SK_C_STORE_ERROR, NULL }, SK_END } },
    { "scalekit_session_memo_hits_total", "Requests whose session was that of the previous "
      "request on the same connection, with the same cookies (counted in "
      "scalekit_requests_total too).", NULL, { { SK_C_MEMO, NULL }, SK_END } },
};

static void sk_prom_head(request_rec *r, const char *name, const char *help, const char *type)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sk_prom_family_out(request_rec *r, const sk_prom_family *f)
{
    sk_prom_head(r, f->name, f->help, "counter");
    for (int i = 0; i < 4 && f->samples[i].c != SK_C__COUNT; i++) {
        if (f->label)
            ap_rprintf(r, "%s{%s=\"%s\"} %u\n", f->name, f->label, f->samples[i].value,
                       sk_read(f->samples[i].c));
        else
            ap_rprintf(r, "%s %u\n", f->name, sk_read(f->samples[i].c));
    }
}

/* One figure of the answering process: pid labels it, for the process
 * changes from one scrape to the next. */
static void sk_prom_process(request_rec *r, const char *name, const char *help,
                            const char *type, apr_uint64_t value)
{
    sk_prom_head(r, name, help, type);
    ap_rprintf(r, "%s{pid=\"%" APR_PID_T_FMT "\"} %" APR_UINT64_T_FMT "\n", name, getpid(),
               value);
}

static void sk_status_prometheus(request_rec *r, const sk_validator_stats *v,
                                 const sk_keystore_stats *k)
{
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    for (size_t i = 0; i < sizeof(sk_prom_families) / sizeof(sk_prom_families[0]); i++)
        sk_prom_family_out(r, &sk_prom_families[i]);
    sk_prom_head(r, "scalekit_token_refusals_total", "Tokens refused, by reason.", "counter");
    for (int i = 1; i < SK_JWT_E__COUNT; i++)
        ap_rprintf(r, "scalekit_token_refusals_total{reason=\"%s\"} %u\n",
                   sk_jwt_err_str((sk_jwt_err)i), sk_read(SK_C__COUNT + i));
    sk_prom_process(r, "scalekit_process_validations_total", "Token validations of this "
                    "process (the one that answered), cache hits included.", "counter",
                    v->validations);
    sk_prom_process(r, "scalekit_process_validation_cache_hits_total", "Validations of this "
                    "process answered from its validation cache.", "counter", v->cache_hits);
    sk_prom_process(r, "scalekit_process_validation_cache_entries", "Tokens in this process's "
                    "validation caches (ScalekitCacheEntries bounds each).", "gauge",
                    v->cache_entries);
    sk_prom_process(r, "scalekit_process_signing_keys", "Signing keys this process holds.",
                    "gauge", k->keys);
}

/* ?format=prometheus, or a scraper's Accept (Prometheus asks for OpenMetrics
 * first, and takes 0.0.4 as its Content-Type says). */
static int sk_wants_prometheus(const request_rec *r, const char *accept)
{
    if (r->args && !strcmp(r->args, "format=prometheus"))
        return 1;
    return accept && (ap_strstr_c(accept, "application/openmetrics-text")
                      || (ap_strstr_c(accept, "text/plain") && ap_strstr_c(accept, "0.0.4")));
}

int sk_status_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, SK_STATUS_HANDLER))
        return DECLINED;
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    sk_validator_stats v;
    sk_keystore_stats k;
    sk_engine_stats(ap_server_conf, &v, &k);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    const char *accept = apr_table_get(r->headers_in, "Accept");
    if (sk_wants_prometheus(r, accept))
        sk_status_prometheus(r, &v, &k);
    else if ((r->args && !strcmp(r->args, "json")) || (accept && ap_strstr_c(accept, "json")))
        sk_status_json(r, &v, &k);
    else
        sk_status_text(r, &v, &k);
    return OK;
}
