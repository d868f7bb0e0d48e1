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
    "refresh_limited",
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
static apr_uint32_t sk_read(int i)
{
    if (!sk_counters)
        return i < SK_C__COUNT ? 0 : sk_failures_local[i - SK_C__COUNT];
    apr_uint32_t sum = 0;
    for (int k = 0; k < SK_SHARDS; k++)
        sum += apr_atomic_read32(&sk_counters[k * SK_SHARD_WORDS + i]);
    return sum;
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
    if ((r->args && !strcmp(r->args, "json")) || (accept && ap_strstr_c(accept, "json")))
        sk_status_json(r, &v, &k);
    else
        sk_status_text(r, &v, &k);
    return OK;
}
