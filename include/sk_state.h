/* SPDX-License-Identifier: Apache-2.0 */
/* sk_state.h: sealing small secrets into cookies (AES-256-GCM, key derived
 * once at start-up), and the login state carried from login to callback.
 * Links without httpd. */
#ifndef SK_STATE_H
#define SK_STATE_H

#include <stdint.h>
#include <apr_pools.h>

typedef struct sk_sealer sk_sealer;

/* Derive the sealing key from a secret with HKDF-SHA256 (label separates uses).
 * Do it once, at start-up: never per request. NULL on failure. */
sk_sealer *sk_sealer_create(apr_pool_t *p, const char *secret, const char *label);

/* base64url(iv | ciphertext | tag); NULL on failure. */
char *sk_seal(apr_pool_t *p, const sk_sealer *k, const char *plain, size_t len);
/* The plain text, NUL-terminated; NULL when the value was altered, truncated,
 * sealed under another key, or is not base64url. Sealed values over 8 KiB
 * are refused unread. */
char *sk_unseal(apr_pool_t *p, const sk_sealer *k, const char *sealed, size_t *len);

/* The same, bound to a context string (e.g. the store key a record lives
 * under) that is authenticated but not stored: a value moved to another
 * context does not open. sealed values over max bytes are refused. */
char *sk_seal_bound(apr_pool_t *p, const sk_sealer *k, const char *bound, const char *plain,
                    size_t len);
char *sk_unseal_bound(apr_pool_t *p, const sk_sealer *k, const char *bound, const char *sealed,
                      size_t max, size_t *len);
/* sk_seal_bound with an IV made from bound and plain (a synthetic IV): the
 * same input seals to the same value (which is all that reveals), so that
 * parallel requests sealing one thing hand out one cookie. */
char *sk_seal_bound_same(apr_pool_t *p, const sk_sealer *k, const char *bound,
                         const char *plain, size_t len);

/* What the callback needs to finish a sign-in that the login started. */
typedef struct sk_login_state {
    const char *state, *nonce, *verifier, *return_to;
    int64_t created;         /* seconds since the epoch */
    int silent;              /* 1: sent with prompt=none (retry without on login_required) */
    const char *params;      /* the sign-in parameters sent (a query string), or NULL */
    const char *switch_to;   /* an organization switch: the organizations asked for, or NULL */
    const char *redirect_uri;   /* made from the request (a path ScalekitRedirectURI), or NULL */
} sk_login_state;

char *sk_login_state_seal(apr_pool_t *p, const sk_sealer *k, const sk_login_state *s);
/* APR_SUCCESS when the cookie value unseals into a complete login state,
 * else APR_EINVAL. */
apr_status_t sk_login_state_open(apr_pool_t *p, const sk_sealer *k, const char *sealed,
                                 sk_login_state *out);

/* The mark a finished organization switch leaves (a short-lived cookie):
 * which return address it was for, the organizations asked for, and when. */
char *sk_switch_mark_seal(apr_pool_t *p, const sk_sealer *k, const char *return_to,
                          const char *orgs, int64_t when);
/* APR_SUCCESS when sealed opens into a complete mark, else APR_EINVAL. */
apr_status_t sk_switch_mark_open(apr_pool_t *p, const sk_sealer *k, const char *sealed,
                                 const char **return_to, const char **orgs, int64_t *when);

#endif
