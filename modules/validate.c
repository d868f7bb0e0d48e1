/* SPDX-License-Identifier: Apache-2.0 */
/* validate.c: the validator: sk_jwt_verify + sk_jwt_check_claims behind a
 * bounded, thread-safe cache of successful results keyed by the whole token
 * (see sk_jwt.h). A warm hit is a keyed hash, a read lock, one memcmp and a
 * reference count: no allocation, no JSON, no RSA. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* pthread_rwlockattr_setkind_np */
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "sk_jwt.h"
#include "sk_keys.h"

#define CACHE_MAX (1u << 24)
#define NOEXP_TTL 3600           /* check_exp=0: re-validate hourly anyway */
#define EVICT_SCAN 8             /* bound on the eviction walk: O(1) per insert */
#define LOCK_SHARDS 16           /* read locks: each thread takes one of these */

/* ---- SipHash: a keyed hash, so no one can aim tokens at one bucket ---- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);                      /* one unaligned load */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIPROUND                                                              \
    do {                                                                      \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);             \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);             \
    } while (0)

/* SipHash-1-3 (one compression round, three of finalization): the variant
 * hash tables use against hash flooding (Rust's, Python's), a third of 2-4's
 * rounds for the ~24 bytes hashed here. */
static uint64_t siphash13(const uint64_t k[2], const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    uint64_t b = (uint64_t)len << 56;
    size_t full = len & ~(size_t)7;

    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the cache ---- */

typedef struct centry {
    struct centry *hnext;          /* bucket chain */
    struct centry *prev, *next;    /* age list, head = oldest */
    uint64_t hash;
    int64_t until;                 /* hits count until this time */
    sk_claims *claims;             /* one reference held by the entry */
    unsigned char used;            /* hit since its last eviction scan (atomic) */
    size_t len;
    char token[];                  /* the whole token, compared in full */
} centry;

/* A hit takes the read lock of its thread's shard and counts itself there;
 * an insert takes every shard's lock. One lock and one counter shared by all
 * threads made each hit two cross-core cache line transfers. */
typedef struct {
    pthread_rwlock_t lock;
    uint64_t hits;                 /* atomic */
} __attribute__((aligned(64))) lock_shard;

struct sk_validator {
    lock_shard shards[LOCK_SHARDS];
    sk_policy pol;
    sk_keystore *keys;
    centry **buckets;
    size_t mask, cap, count;
    centry *head, *tail;
    uint64_t key[2];
    uint64_t cold, evictions, vouched;                /* atomics */
    uint64_t failures[SK_JWT_E__COUNT];
};

static void count(uint64_t *c)
{
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static int lock_init(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    int rc;
    if (pthread_rwlockattr_init(&a))
        return -1;
    /* Inserts must not starve behind a steady stream of hits. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
    return rc;
}

unsigned sk_thread_number(void)
{
    static unsigned next;
    static __thread unsigned mine;                 /* 0: not numbered yet */
    if (!mine)
        mine = __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
    return mine;
}

static lock_shard *my_shard(sk_validator *v)
{
    return &v->shards[sk_thread_number() % LOCK_SHARDS];
}

static void lock_all(sk_validator *v)
{
    for (int i = 0; i < LOCK_SHARDS; i++)
        pthread_rwlock_wrlock(&v->shards[i].lock);
}

static void unlock_all(sk_validator *v)
{
    for (int i = LOCK_SHARDS; i-- > 0;)
        pthread_rwlock_unlock(&v->shards[i].lock);
}

sk_validator *sk_validator_create(const sk_policy *policy, struct sk_keystore *keys,
                                  size_t cache_entries)
{
    sk_validator *v = NULL;
    size_t nb = 16;
    int locks = 0;

    if (posix_memalign((void **)&v, 64, sizeof *v))
        return NULL;
    memset(v, 0, sizeof *v);
    v->pol = *policy;
    v->keys = keys;
    v->cap = cache_entries < CACHE_MAX ? cache_entries : CACHE_MAX;
    while (nb < 2 * v->cap)
        nb <<= 1;
    v->mask = nb - 1;
    while (locks < LOCK_SHARDS && !lock_init(&v->shards[locks].lock))
        locks++;
    if (locks < LOCK_SHARDS || !(v->buckets = calloc(nb, sizeof *v->buckets)) ||
        RAND_bytes((unsigned char *)v->key, sizeof v->key) != 1) {
        while (locks-- > 0)
            pthread_rwlock_destroy(&v->shards[locks].lock);
        free(v->buckets);
        free(v);
        return NULL;
    }
    return v;
}

static void entry_free(centry *e)
{
    sk_claims_unref(e->claims);
    free(e);
}

void sk_validator_destroy(sk_validator *v)
{
    if (!v)
        return;
    for (centry *e = v->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    for (int i = 0; i < LOCK_SHARDS; i++)
        pthread_rwlock_destroy(&v->shards[i].lock);
    free(v->buckets);
    free(v);
}

static centry *find(const sk_validator *v, uint64_t h, const char *token, size_t len)
{
    for (centry *e = v->buckets[h & v->mask]; e; e = e->hnext)
        if (e->hash == h && e->len == len && !memcmp(e->token, token, len))
            return e;
    return NULL;
}

/* 1 when the cache answers: *rc and *out set. */
static int lookup(sk_validator *v, uint64_t h, const char *token, size_t len, int64_t now,
                  sk_jwt_err *rc, sk_claims **out)
{
    sk_claims *c = NULL;
    int64_t until = 0;
    lock_shard *sh = my_shard(v);

    pthread_rwlock_rdlock(&sh->lock);
    centry *e = find(v, h, token, len);
    if (e) {
        until = e->until;
        if (now < until || v->pol.check_exp) {
            c = sk_claims_ref(e->claims);
            if (!__atomic_load_n(&e->used, __ATOMIC_RELAXED))
                __atomic_store_n(&e->used, 1, __ATOMIC_RELAXED);
        }
    }
    pthread_rwlock_unlock(&sh->lock);
    if (!c)
        return 0;
    count(&sh->hits);
    *out = c;
    /* With check_exp, until is exp + leeway: past it the token has expired. */
    *rc = now < until ? SK_JWT_OK : SK_JWT_E_EXPIRED;
    return 1;
}

static void list_unlink(sk_validator *v, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        v->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        v->tail = e->prev;
}

static void list_append(sk_validator *v, centry *e)
{
    e->next = NULL;
    e->prev = v->tail;
    if (v->tail)
        v->tail->next = e;
    else
        v->head = e;
    v->tail = e;
}

static void remove_entry(sk_validator *v, centry *e)
{
    centry **pp = &v->buckets[e->hash & v->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(v, e);
    v->count--;
}

/* Pick a victim: the first expired or not-recently-hit entry among the
 * oldest few (hit ones get a second chance at the back), else the oldest. */
static centry *evict_one(sk_validator *v, int64_t now)
{
    centry *e;
    for (int i = 0; i < EVICT_SCAN && v->head != v->tail; i++) {
        e = v->head;
        if (e->until <= now || !__atomic_load_n(&e->used, __ATOMIC_RELAXED))
            break;
        __atomic_store_n(&e->used, 0, __ATOMIC_RELAXED);
        list_unlink(v, e);
        list_append(v, e);
    }
    e = v->head;
    remove_entry(v, e);
    count(&v->evictions);
    return e;
}

/* Free the expired among the oldest few entries: the cache holds live
 * tokens, not every token seen since start-up (lock held). */
static void drop_expired(sk_validator *v, int64_t now)
{
    centry *e = v->head, *n;
    for (int i = 0; e && i < EVICT_SCAN; i++, e = n) {
        n = e->next;
        if (e->until > now)
            continue;
        remove_entry(v, e);
        count(&v->evictions);
        entry_free(e);                  /* claims are reference-counted */
    }
}

static void insert(sk_validator *v, uint64_t h, const char *token, size_t len, int64_t now,
                   sk_claims *c)
{
    int64_t until = v->pol.check_exp ? c->exp + (v->pol.leeway > 0 ? v->pol.leeway : 0)
                                     : now + NOEXP_TTL;
    centry *n, *e, *dead = NULL;
    sk_claims *old = NULL;

    if (until <= now || !(n = malloc(sizeof *n + len)))
        return;
    memset(n, 0, sizeof *n);
    n->hash = h;
    n->until = until;
    n->len = len;
    memcpy(n->token, token, len);
    n->claims = sk_claims_ref(c);

    lock_all(v);
    if ((e = find(v, h, token, len))) {
        /* Another thread got here first, or a check_exp=0 entry aged out. */
        old = e->claims;
        e->claims = n->claims;
        e->until = until;
        n->claims = NULL;
        dead = n;
    } else {
        drop_expired(v, now);
        if (v->count >= v->cap)
            dead = evict_one(v, now);
        n->hnext = v->buckets[h & v->mask];
        v->buckets[h & v->mask] = n;
        list_append(v, n);
        v->count++;
    }
    unlock_all(v);
    sk_claims_unref(old);
    if (dead)
        entry_free(dead);               /* its claims may live on in requests */
}

/* ---- validation ---- */

/* How a token is taken (bits): VOUCHED, a party holding our sealing key
 * verified this exact token's signature already (a sealed session record
 * says so), the claims are still checked here; AUDLESS, a token without aud
 * may pass (sk_validate_audless). */
#define V_VOUCHED 1u
#define V_AUDLESS 2u

static sk_jwt_err validate_cold(sk_validator *v, const char *token, size_t len, int64_t now,
                                unsigned how, sk_claims **out)
{
    cJSON *payload = NULL;
    char *text = NULL;                  /* the decoded payload: the claims keep it */
    size_t text_len = 0;
    sk_jwt_err rc;

    if (how & V_VOUCHED) {
        payload = sk_jwt_peek_payload(token, len, &text, &text_len);
        rc = payload ? SK_JWT_OK : SK_JWT_E_PAYLOAD;
        count(&v->vouched);
    } else {
        rc = sk_jwt_verify(token, len, &v->pol, v->keys, now, &payload, &text, &text_len);
    }
    if (rc)
        return rc;
    rc = (how & V_AUDLESS) ? sk_jwt_check_claims_audless(payload, &v->pol, now)
                           : sk_jwt_check_claims(payload, &v->pol, now);
    if (rc && rc != SK_JWT_E_EXPIRED) {
        cJSON_Delete(payload);
        free(text);
        return rc;
    }
    *out = sk_claims_new(payload, text, text_len);
    free(text);
    return *out ? rc : SK_JWT_E_INTERNAL;
}

/* The bucket of a token: a keyed hash of its length and last 16 bytes. They
 * lie in the signature, which no one but the key holder can choose, and
 * entries are only made for tokens whose signature verified; a hit still
 * compares the whole token. Hashing 16 bytes instead of ~1 KB halves the
 * module's cost on a warm request (profiled: the hash was 8.7k of its 17k
 * instructions with two tokens); 16 bytes of an RS256 signature are 128
 * random bits, as many as the hash's key. */
#define HASH_TAIL 16

static uint64_t token_hash(const sk_validator *v, const char *token, size_t len)
{
    unsigned char buf[HASH_TAIL + sizeof(uint64_t)];
    uint64_t n = (uint64_t)len;
    size_t tail = len < HASH_TAIL ? len : HASH_TAIL;
    memcpy(buf, &n, sizeof(n));
    memcpy(buf + sizeof(n), token + len - tail, tail);
    return siphash13(v->key, buf, sizeof(n) + tail);
}

/* A value opened by a caller's function instead of verified as a token. */
typedef struct opener {
    sk_claims_opener *fn;
    void *ctx;
} opener;

static sk_jwt_err validate(sk_validator *v, const char *token, size_t len, int64_t now,
                           unsigned how, const opener *open, sk_claims **out)
{
    size_t max = sk_policy_token_max(&v->pol);
    sk_jwt_err rc;
    uint64_t h = 0;

    *out = NULL;
    if (token && len <= max && v->cap) {
        h = token_hash(v, token, len);
        if (lookup(v, h, token, len, now, &rc, out)) {
            /* Cached by token alone: an aud-less result is only for callers
             * that asked for one. */
            if (!(*out)->has_aud && !(how & V_AUDLESS)) {
                sk_claims_unref(*out);
                *out = NULL;
                rc = SK_JWT_E_AUD;
            }
            if (rc)
                goto fail;
            return rc;
        }
    }
    /* Validations are hits + cold: one shared counter less on a hit. */
    count(&v->cold);
    if (!token || len > max) {
        rc = token ? SK_JWT_E_TOO_LARGE : SK_JWT_E_SEGMENTS;
        goto fail;
    }
    if (open)
        rc = (*out = open->fn(open->ctx, token, len)) ? SK_JWT_OK : SK_JWT_E_SIGNATURE;
    else
        rc = validate_cold(v, token, len, now, how, out);
    if (rc == SK_JWT_OK && v->cap)
        insert(v, h, token, len, now, *out);
    if (rc == SK_JWT_OK)
        return rc;
fail:
    count(&v->failures[rc]);
    return rc;
}

sk_jwt_err sk_validate(sk_validator *v, const char *token, size_t len, int64_t now,
                       sk_claims **out)
{
    return validate(v, token, len, now, 0, NULL, out);
}

sk_jwt_err sk_validate_vouched(sk_validator *v, const char *token, size_t len, int64_t now,
                               sk_claims **out)
{
    return validate(v, token, len, now, V_VOUCHED, NULL, out);
}

sk_jwt_err sk_validate_audless(sk_validator *v, const char *token, size_t len, int64_t now,
                               sk_claims **out)
{
    return validate(v, token, len, now, V_AUDLESS, NULL, out);
}

sk_jwt_err sk_validate_opened(sk_validator *v, const char *value, size_t len, int64_t now,
                              sk_claims_opener *fn, void *ctx, sk_claims **out)
{
    const opener open = { fn, ctx };
    /* Claims of our own making carry no aud: V_AUDLESS lets the cache hand them back. */
    return validate(v, value, len, now, V_AUDLESS, &open, out);
}

void sk_validator_get_stats(sk_validator *v, sk_validator_stats *out)
{
    out->cache_hits = 0;
    for (int i = 0; i < LOCK_SHARDS; i++)
        out->cache_hits += __atomic_load_n(&v->shards[i].hits, __ATOMIC_RELAXED);
    out->validations = out->cache_hits + __atomic_load_n(&v->cold, __ATOMIC_RELAXED);
    out->evictions = __atomic_load_n(&v->evictions, __ATOMIC_RELAXED);
    out->vouched = __atomic_load_n(&v->vouched, __ATOMIC_RELAXED);
    lock_shard *sh = my_shard(v);
    pthread_rwlock_rdlock(&sh->lock);
    out->cache_entries = v->count;
    pthread_rwlock_unlock(&sh->lock);
    for (int i = 0; i < SK_JWT_E__COUNT; i++)
        out->failures[i] = __atomic_load_n(&v->failures[i], __ATOMIC_RELAXED);
}
