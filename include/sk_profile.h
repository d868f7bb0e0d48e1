/* SPDX-License-Identifier: Apache-2.0 */
/* sk_profile.h: the profile cookie. With cookie sessions the ID token (~1 KB)
 * travels only to the sign-in handler's path; every other request carries
 * what it is needed for there (email, name, custom claims, the sid and sub
 * that bind it to the access token) in this sealed cookie: the verified ID
 * token's claims without the JWT plumbing. Links without httpd. */
#ifndef SK_PROFILE_H
#define SK_PROFILE_H

#include <apr_pools.h>
#include "sk_jwt.h"
#include "sk_state.h"

/* The sealing's bound: no state cookie, organization-switch mark or store
 * record opens as a profile, nor a profile as one of them. */
#define SK_PROFILE_BOUND "mod_scalekit profile v1"
/* A profile is a subset of an ID token, which must fit a cookie. */
#define SK_PROFILE_MAX 4096

/* The sealed profile of a verified ID token's claims: every claim but iss,
 * aud, azp, client_id, iat, nbf, at_hash, c_hash, nonce, auth_time and jti;
 * NULL when out of memory. */
char *sk_profile_seal(apr_pool_t *p, const sk_sealer *k, const sk_claims *id);

/* A sealed profile's claims, one reference (sk_claims_unref), or NULL when
 * it does not open (altered, foreign, not ours) or holds no sub. p holds
 * the work. */
sk_claims *sk_profile_open(apr_pool_t *p, const sk_sealer *k, const char *sealed,
                           size_t len);

#endif
