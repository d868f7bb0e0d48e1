/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_signout.c: back-channel logout without an index of sessions.
 *
 * A logout token ends one Scalekit session (sid) or every session of a user
 * (sub). Rather than finding those sessions (an index per user was a
 * read-modify-write that concurrent sign-ins could lose, and was capped), the
 * module remembers when each was signed out: "sid S signed out at T", "sub U
 * signed out at T", T the logout token's iat (Scalekit's clock, like the iat
 * of the tokens it is compared with). A session whose access token was
 * issued at or before T is over, however many there are; one issued later is
 * a new sign-in. A refresh cannot bring an ended session back: Scalekit
 * refuses the refresh tokens of a session it ended.
 *
 * The marks live in the session store (every server sharing it sees them),
 * or with cookie sessions in this machine's shared cache (httpd_shared.c).
 *
 * Warm path: a token's claims (cached by the validator) keep the generation
 * at which its marks were last read, and a request compares it with the
 * current one: one atomic read. The store is read only when it moved: a mark
 * written on this machine bumps a counter in shared memory at once; a store
 * shared by machines (redis, memcache) also holds a generation key that each
 * process reads at most once per SK_MARK_POLL. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "httpd.h"
#include "http_log.h"
#include "apr_atomic.h"
#include "apr_strings.h"

#include "sk_module.h"

#define SK_MARK_KEEP   apr_time_from_sec(86400 + 3600)  /* outlives a user's access tokens */
#define SK_MARK_POLL   apr_time_from_sec(1)
#define SK_MARK_MAX    64                               /* bytes of a mark's value */

static apr_uint32_t *sk_mark_epoch;     /* shared memory: bumped by every mark written here */
static sk_store sk_shared_view;         /* the shared cache seen as a store */

void sk_signout_post_config(server_rec *s)
{
    if (!sk_mark_epoch)
        sk_mark_epoch = sk_process_shm(s, "mod_scalekit sign-out epoch", sizeof(apr_uint32_t));
    sk_shared_view = (sk_store){ .ops = &sk_socache_ops, .provider = sk_shared_store.provider,
                                 .instance = sk_shared_store.instance, .not_mp_safe = 1 };
}

sk_store *sk_signout_store(const sk_server_conf *c)
{
    if (c->store)
        return c->store;
    return sk_shared_view.instance ? &sk_shared_view : NULL;
}

/* The key of a mark: hashed, and of this client (two virtual hosts of two
 * environments keep their users apart). */
static const char *sk_mark_key(request_rec *r, const char *kind, const char *value)
{
    sk_server_conf *c = sk_server_config(r);
    return sk_hashed_key(r->pool, kind, apr_pstrcat(r->pool, c->client_id, " ", value, NULL));
}

/* The store's generation key (hashed like every key: memcached takes no
 * spaces). */
static const char *sk_gen_key(request_rec *r)
{
    return sk_hashed_key(r->pool, "gen", "mod_scalekit sign-out");
}

/* APR_SUCCESS with *at, APR_NOTFOUND, or the store's failure. */
static apr_status_t sk_mark_read(request_rec *r, const sk_store *st, const char *key,
                                 int64_t *at)
{
    char *text = NULL;
    apr_status_t rv = sk_store_get_small(r, st, key, SK_MARK_MAX, &text);
    if (rv == APR_SUCCESS)
        *at = (int64_t)apr_atoi64(text);
    return rv;
}

/* Another machine may have written a mark: look at the store's generation key
 * at most once per SK_MARK_POLL in this process (one thread looks). */
static void sk_mark_poll(request_rec *r, sk_store *st)
{
    apr_time_t now = apr_time_now();
    int64_t last = __atomic_load_n(&st->polled, __ATOMIC_RELAXED);
    if (now - last < SK_MARK_POLL
        || !__atomic_compare_exchange_n(&st->polled, &last, now, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        return;
    char *text = NULL;
    if (sk_store_get_small(r, st, sk_gen_key(r), SK_MARK_MAX, &text) != APR_SUCCESS)
        return;
    uint64_t gen = (uint64_t)apr_atoi64(text);
    if (gen != __atomic_exchange_n(&st->remote_gen, gen, __ATOMIC_RELAXED))
        __atomic_fetch_add(&st->remote_bumps, 1, __ATOMIC_RELEASE);
}

/* The generation now; 0 when there is none to keep (no shared memory): then
 * every request reads the marks. */
static uint64_t sk_mark_generation(request_rec *r, sk_store *st)
{
    if (!sk_mark_epoch)
        return 0;
    if (st->remote)
        sk_mark_poll(r, st);
    return 1 + (uint64_t)apr_atomic_read32(sk_mark_epoch)
           + __atomic_load_n(&st->remote_bumps, __ATOMIC_ACQUIRE);
}

int sk_is_signed_out(request_rec *r, sk_claims *a)
{
    sk_store *st = sk_signout_store(sk_server_config(r));
    if (!st)
        return 0;
    uint64_t gen = sk_mark_generation(r, st);       /* read before the marks */
    if (gen && __atomic_load_n(&a->checked, __ATOMIC_ACQUIRE) == gen)
        return 0;
    const char *kinds[2] = { "out-sid", "out-sub" }, *values[2] = { a->sid, a->sub };
    int read_all = 1;
    for (int i = 0; i < 2; i++) {
        int64_t at = 0;
        if (!values[i])
            continue;
        apr_status_t rv = sk_mark_read(r, st, sk_mark_key(r, kinds[i], values[i]), &at);
        if (rv == APR_SUCCESS && a->iat <= at)
            return 1;
        if (rv != APR_SUCCESS && !APR_STATUS_IS_NOTFOUND(rv))
            read_all = 0;
    }
    /* A store that did not answer is not a sign-out (the session store's own
     * failures are handled where the record is read); it is asked again on
     * the next request. */
    if (read_all && gen)
        __atomic_store_n(&a->checked, gen, __ATOMIC_RELEASE);
    return 0;
}

/* Keep the later of an existing mark and at (two logout tokens of one user
 * may arrive in either order). */
static apr_status_t sk_mark_write(request_rec *r, const sk_store *st, const char *key,
                                  int64_t at)
{
    int64_t old = 0;
    if (sk_mark_read(r, st, key, &old) == APR_SUCCESS && old >= at)
        return APR_SUCCESS;
    return sk_store_put(r, st, key, apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)at),
                        SK_MARK_KEEP);
}

apr_status_t sk_signout_mark(request_rec *r, const char *sid, const char *sub, int64_t at)
{
    sk_store *st = sk_signout_store(sk_server_config(r));
    apr_status_t rv = APR_SUCCESS;
    if (!st)
        return APR_EGENERAL;
    if (sid)
        rv = sk_mark_write(r, st, sk_mark_key(r, "out-sid", sid), at);
    if (rv == APR_SUCCESS && sub)
        rv = sk_mark_write(r, st, sk_mark_key(r, "out-sub", sub), at);
    if (rv != APR_SUCCESS)
        return rv;
    if (st->remote) {                   /* other machines look at this key */
        uint64_t gen = ((uint64_t)apr_time_now() << 16) ^ (uint64_t)getpid();
        sk_store_put(r, st, sk_gen_key(r), apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, gen),
                     SK_MARK_KEEP * 30);
        __atomic_store_n(&st->polled, 0, __ATOMIC_RELAXED);
    }
    if (sk_mark_epoch)                  /* after the writes: see sk_is_signed_out */
        apr_atomic_inc32(sk_mark_epoch);
    return APR_SUCCESS;
}
