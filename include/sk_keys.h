/* SPDX-License-Identifier: Apache-2.0 */
/* sk_keys.h: JWKS parsing (each key imported once into an EVP_PKEY) and the
 * key store that keeps the current set fresh. Links without httpd. */
#ifndef SK_KEYS_H
#define SK_KEYS_H

#include <apr_errno.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* An immutable parsed JWKS. Keys that are not for signatures (use other than
 * "sig", key_ops without "verify"), of unknown kty (only RSA and EC P-256),
 * with a JWK "alg" other than RS256/PS256/ES256 or not fitting kty, RSA under
 * 2048 or over 8192 bits, EC points off the curve, or malformed base64url
 * are skipped, not fatal. At most 256 keys are read. Duplicate kids: the
 * first in the document is kept, later ones are dropped. */
typedef struct sk_keyset sk_keyset;

/* NULL on failure (not JSON, no "keys" array, over 1 MiB, no usable key), with
 * a one-line reason in err. */
sk_keyset *sk_keyset_parse(const char *json, size_t len, char *err, size_t errlen);
/* Drops a reference (sets are reference-counted; parse returns one). */
void sk_keyset_free(sk_keyset *ks);
size_t sk_keyset_size(const sk_keyset *ks);
/* kid NULL: the only key when there is exactly one. Borrowed pointer; *alg_out
 * (may be NULL) receives the key's JWK "alg" as SK_ALG_* bits, 0 when absent. */
EVP_PKEY *sk_keyset_find(const sk_keyset *ks, const char *kid, unsigned *alg_out);

/* Fetch the JWKS document: APR_SUCCESS and a malloc'd body; another status
 * and a one-line reason in err otherwise. Called without any lock held. */
typedef apr_status_t (*sk_jwks_fetch_fn)(void *ctx, char **body, size_t *len, char *err,
                                         size_t errlen);

/* The key store: the current key set, fetched lazily (never at start-up).
 * Past ttl seconds a set is stale: it keeps serving while one background
 * thread refetches it (no request waits for the IdP for that). An unknown kid
 * refetches in the request, at most once per min_refetch seconds; concurrent
 * misses wait for one fetch. When a fetch fails the previous set stays in
 * use; min_refetch also spaces retries after a failure. Thread-safe. ttl <= 0
 * means 3600. fetch may be NULL (a store fed only by sk_keystore_put).
 * min_refetch is measured on the store's monotonic clock, not on the callers'
 * now (which may be stale, or the wall clock may step); a set is stale past
 * ttl by either clock. */
typedef struct sk_keystore sk_keystore;

sk_keystore *sk_keystore_create(sk_jwks_fetch_fn fetch, void *ctx, int ttl, int min_refetch);

/* The store's monotonic clock in whole seconds; CLOCK_MONOTONIC unless set
 * (tests drive it by hand). clock NULL restores CLOCK_MONOTONIC. */
typedef int64_t (*sk_clock_fn)(void *ctx);
void sk_keystore_set_clock(sk_keystore *s, sk_clock_fn clock, void *ctx);
/* Waits for a background refresh to end, then frees the store. */
void sk_keystore_destroy(sk_keystore *s);

/* A copy of the last good JWKS shared with other processes (httpd children
 * of this and later generations). load: APR_SUCCESS and a malloc'd body with
 * the time it was fetched, when there is a copy (else APR_NOTFOUND). save: offer a good body just fetched.
 * Both run without the store's lock, possibly on the background thread. A
 * process with no set of its own uses a copy fetched within ttl instead of
 * calling the IdP (and one within min_refetch after an unknown kid); when the
 * IdP fails and the process has no set at all, a copy of any age serves. */
typedef struct sk_keystore_shared {
    apr_status_t (*load)(void *ctx, char **body, size_t *len, int64_t *fetched);
    void (*save)(void *ctx, const char *body, size_t len, int64_t fetched);
    void *ctx;
} sk_keystore_shared;
void sk_keystore_set_shared(sk_keystore *s, const sk_keystore_shared *shared);

/* Block until no fetch is in flight (tests; destroy). */
void sk_keystore_wait_idle(sk_keystore *s);

/* Find the key for kid (NULL: the only key) at time now. On success returns
 * the key and a held reference to its set in *held, released with
 * sk_keystore_release. Returns NULL when the kid is unknown after any allowed
 * refetch (*why = SK_JWT_E_KID_UNKNOWN or SK_JWT_E_KID_MISSING) or no set
 * could be had (*why = SK_JWT_E_NO_KEYS). */
EVP_PKEY *sk_keystore_get(sk_keystore *s, const char *kid, int64_t now,
                          const sk_keyset **held, unsigned *alg_out, int *why);
void sk_keystore_release(sk_keystore *s, const sk_keyset *held);

/* Install a set directly (tests, benchmarks): takes ownership. */
void sk_keystore_put(sk_keystore *s, sk_keyset *ks, int64_t now);

typedef struct sk_keystore_stats {
    uint64_t fetches, fetch_failures, keys;
    uint64_t background_refreshes;     /* stale sets refreshed off the request path */
    uint64_t shared_loads;             /* sets taken from the shared copy */
    int64_t last_fetch;            /* time of the last successful fetch, 0 if none */
    char last_error[160];          /* why the last fetch failed; "" once one succeeds */
} sk_keystore_stats;
void sk_keystore_get_stats(sk_keystore *s, sk_keystore_stats *out);

#endif
