/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_store_copy.c: each process's copies of the session records it read
 * from a shmcb session store.
 *
 * Reading a shmcb record takes the global mutex (an fcntl lock and a thread
 * mutex per request under Debian's "Mutex file:... default", with threads
 * queueing on it), then AES-GCM and JSON. A process keeps what it read and
 * uses its copy for as long as nothing on this machine wrote or removed that
 * record: every write and removal adds one to an epoch in shared memory
 * (one of SK_EPOCHS, chosen by the store key), and a copy counts only while
 * the epoch it was read under is unchanged. A reader loads the epoch before
 * it reads the store, a writer adds to it after it wrote: once a sign-out,
 * refresh or back-channel logout has written, no request that starts after
 * it uses an older copy, in any process.
 *
 * For shmcb, and for Redis of the module's own, whose invalidations bump
 * the epochs of what other machines write (httpd_redis.c); not for
 * memcached or httpd's socache_redis, written by other machines too, whose
 * writes no epoch here sees. A copy is also dropped when the record
 * expires and SK_COPY_RECHECK after it was read (shmcb may evict a record
 * early when full; that is not a sign-out, but no copy should outlive it
 * long). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "http_log.h"
#include "apr_atomic.h"
#include "apr_strings.h"

#include "sk_module.h"

#define SK_EPOCHS       65536
#define SK_COPY_SLOTS   1024            /* per process; a slot holds one record */
#define SK_COPY_LOCKS   64
#define SK_COPY_RECHECK 30              /* seconds */

typedef struct sk_copy {
    const sk_store *store;              /* whose record: never another virtual host's */
    const char *sid;                    /* the session id; the strings follow */
    const char *key;                    /* its store key */
    const char *access, *id, *refresh;
    int64_t vouched, expires;           /* as in the record */
    int64_t until;                      /* used until then at most */
    apr_uint32_t epoch;
} sk_copy;

typedef struct {
    pthread_mutex_t lock;
} __attribute__((aligned(64))) sk_copy_lock;

static apr_uint32_t *sk_epochs;         /* shared */
static sk_copy *sk_copies[SK_COPY_SLOTS];
static sk_copy_lock sk_copy_locks[SK_COPY_LOCKS];

/* Session ids are random base64url and store keys begin with base64url of
 * a SHA-256: the first bytes of either are uniform. */
static apr_uint32_t sk_bits(const char *s)
{
    apr_uint32_t h = 2166136261u;
    for (int i = 0; i < 8 && s[i]; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static volatile apr_uint32_t *sk_epoch_of(const char *key)
{
    return &sk_epochs[sk_bits(key) % SK_EPOCHS];
}

/* 0 when there is no shared memory: then every request reads the store. */
int sk_store_copy_init(server_rec *s)
{
    if (!sk_epochs && (sk_epochs = sk_process_shm(s, "mod_scalekit store epochs",
                                                  sizeof(apr_uint32_t) * SK_EPOCHS)))
        for (int i = 0; i < SK_COPY_LOCKS; i++)
            pthread_mutex_init(&sk_copy_locks[i].lock, NULL);
    return sk_epochs != NULL;
}

/* The functions below are called only for a store whose init said 1. */
void sk_store_copy_bump(const char *key)
{
    apr_atomic_inc32(sk_epoch_of(key));
}

void sk_store_copy_bump_all(void)
{
    for (int i = 0; i < SK_EPOCHS; i++)
        apr_atomic_inc32(&sk_epochs[i]);
}

apr_uint32_t sk_store_copy_epoch(const char *key)
{
    return apr_atomic_read32(sk_epoch_of(key));
}

/* The slot of a session id in this process, and the lock that guards it. */
static sk_copy **sk_slot(const char *sid, pthread_mutex_t **lock)
{
    apr_uint32_t slot = sk_bits(sid) % SK_COPY_SLOTS;
    *lock = &sk_copy_locks[slot % SK_COPY_LOCKS].lock;
    return &sk_copies[slot];
}

/* Looked up by the session id itself: a hit computes no SHA-256 (profiled:
 * 4k of the 10.5k instructions of a warm shmcb check). */
int sk_store_copy_get(request_rec *r, const sk_store *store, const char *sid, sk_tokens *t)
{
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    int hit = 0;
    pthread_mutex_t *lock;
    sk_copy **slot = sk_slot(sid, &lock);
    pthread_mutex_lock(lock);
    const sk_copy *c = *slot;
    if (c && c->store == store && now < c->until && !strcmp(c->sid, sid)
        && c->epoch == apr_atomic_read32(sk_epoch_of(c->key))) {
        t->key = apr_pstrdup(r->pool, c->key);
        t->access = c->access ? apr_pstrdup(r->pool, c->access) : NULL;
        t->id = c->id ? apr_pstrdup(r->pool, c->id) : NULL;
        t->refresh = c->refresh ? apr_pstrdup(r->pool, c->refresh) : NULL;
        t->vouched = c->vouched;
        t->expires = c->expires;
        hit = 1;
    }
    pthread_mutex_unlock(lock);
    return hit;
}

static char *sk_copy_str(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*at, s, n);
    *at += n;
    return d;
}

void sk_store_copy_put(const sk_store *store, const char *sid, apr_uint32_t epoch,
                       const sk_tokens *t)
{
    if (t->expires <= 0 || !t->key)
        return;
    const char *parts[5] = { sid, t->key, t->access, t->id, t->refresh };
    size_t size = sizeof(sk_copy);
    for (int i = 0; i < 5; i++)
        size += parts[i] ? strlen(parts[i]) + 1 : 0;
    sk_copy *c = malloc(size), *old;
    if (!c)
        return;
    char *at = (char *)(c + 1);
    c->store = store;
    c->sid = sk_copy_str(&at, sid);
    c->key = sk_copy_str(&at, t->key);
    c->access = sk_copy_str(&at, t->access);
    c->id = sk_copy_str(&at, t->id);
    c->refresh = sk_copy_str(&at, t->refresh);
    c->vouched = t->vouched;
    c->expires = t->expires;
    int64_t recheck = (int64_t)apr_time_sec(apr_time_now()) + SK_COPY_RECHECK;
    c->until = t->expires < recheck ? t->expires : recheck;
    c->epoch = epoch;
    pthread_mutex_t *lock;
    sk_copy **slot = sk_slot(sid, &lock);
    pthread_mutex_lock(lock);
    old = *slot;
    *slot = c;
    pthread_mutex_unlock(lock);
    free(old);
}
