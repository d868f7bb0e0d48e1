/* SPDX-License-Identifier: Apache-2.0 */
/* sk_jwt.h: compact-JWS tokens, their claims, and the validator that checks them.
 * Links without httpd (OpenSSL, cJSON, pthreads; APR's headers for status codes) so
 * unit tests, fuzzers and the micro-benchmark reach it directly. */
#ifndef SK_JWT_H
#define SK_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <apr_errno.h>
#include <cjson/cJSON.h>

/* Signature algorithms, as bits of an allow-list. */
#define SK_ALG_RS256 (1u << 0)
#define SK_ALG_PS256 (1u << 1)
#define SK_ALG_ES256 (1u << 2)

/* The bit of an algorithm's name: only these exact spellings; "none",
 * "None", HS*, ... are 0. */
unsigned sk_alg_bit(const char *name);

/* Why a token was refused; sk_jwt_err_str() names each in a log-friendly word. */
typedef enum {
    SK_JWT_OK = 0,
    SK_JWT_E_TOO_LARGE,     /* token or a segment over the size limits */
    SK_JWT_E_SEGMENTS,      /* not exactly three dot-separated segments */
    SK_JWT_E_BASE64,        /* a segment is not strict base64url (no padding) */
    SK_JWT_E_HEADER,        /* header is not a JSON object / bad typ / bad kid type */
    SK_JWT_E_ALG,           /* alg missing, none, HMAC or not allowed */
    SK_JWT_E_CRIT,          /* a crit header (no extension is understood) */
    SK_JWT_E_KID_MISSING,   /* no kid while the key set holds several keys */
    SK_JWT_E_KID_UNKNOWN,   /* kid not in the key set, even after a refetch */
    SK_JWT_E_KEY_TYPE,      /* the key named by kid does not fit alg */
    SK_JWT_E_SIGNATURE,     /* signature does not verify */
    SK_JWT_E_PAYLOAD,       /* payload is not a JSON object */
    SK_JWT_E_EXP_MISSING,
    SK_JWT_E_EXP_INVALID,   /* exp/nbf/iat present but not a number */
    SK_JWT_E_EXPIRED,       /* exp + leeway is in the past (signature was good) */
    SK_JWT_E_NBF,           /* nbf - leeway is in the future */
    SK_JWT_E_IAT,           /* iat too far in the future */
    SK_JWT_E_ISS,           /* iss missing or not exactly the issuer */
    SK_JWT_E_AUD,           /* aud missing, empty, or holding none of the audiences */
    SK_JWT_E_KIND,          /* another kind of token (an ID token offered as an access
                               token, a logout token as either), or azp naming another
                               client or missing beside several audiences */
    SK_JWT_E_SIGNED_OUT,    /* valid, but its session was signed out since it was
                               issued (back-channel logout; set by the httpd layer) */
    SK_JWT_E_NO_KEYS,       /* the key set could not be had (JWKS unreachable) */
    SK_JWT_E_INTERNAL,
    SK_JWT_E__COUNT
} sk_jwt_err;

const char *sk_jwt_err_str(sk_jwt_err e);

#define SK_TOKEN_MAX_DEFAULT 16384

/* What a validation policy demands of a token. Strings are borrowed: they must
 * outlive the validator (httpd keeps them in the configuration pool). */
typedef struct sk_policy {
    const char *issuer;                /* iss must equal this exactly */
    const char *const *audiences;      /* aud must contain at least one of these */
    size_t n_audiences;
    unsigned algs;                     /* allow-list; 0 means SK_ALG_RS256 */
    int leeway;                        /* seconds, for exp / nbf / iat */
    int check_exp;                     /* 1: exp required and enforced; 0: ignored
                                          (an ID token kept as a session's profile) */
    size_t max_token_len;              /* 0 means SK_TOKEN_MAX_DEFAULT */
    int access_only;                   /* 1: refuse a token with nonce, at_hash or c_hash,
                                          which only ID tokens carry (both kinds share
                                          iss and aud, so nothing else tells them apart) */
    const char *azp;                   /* when set, an azp claim must equal it, and a token
                                          with several audiences must carry it (OIDC Core
                                          3.1.3.7: the ID token's rule) */
    int logout;                        /* 1: back-channel logout tokens: header typ
                                          logout+jwt is accepted. 0: a token carrying
                                          events (a logout token) is refused, and so is
                                          typ logout+jwt: a logout token is never an
                                          access or ID token */
} sk_policy;

/* A validated token's claims: immutable, reference-counted, safe to share
 * between threads. One allocation: the struct and, in buf, the payload's
 * JSON text and copies of the strings below (a cached entry stays small and
 * does not churn the heap). Claims without a field: sk_claims_parse. */
typedef struct sk_claims {
    const char *sub, *email, *name, *oid, *sid, *iss, *client_id;  /* NULL when absent */
    const char *roles;                 /* roles array joined with ",", NULL when absent */
    const char *permissions;           /* permissions array joined with "," */
    const char *scope;                 /* "scope" string, or "scopes" array joined with " " */
    const char *payload;               /* the payload object's JSON text, NUL-terminated */
    size_t payload_len;
    int64_t exp, iat, nbf;             /* 0 when absent */
    uint64_t checked;                  /* the caller's, atomic: a stamp of a check it made
                                          of this token beyond validation (httpd_signout.c) */
    int plain;                         /* the caller's, atomic: 0 not looked at, 1 every
                                          string field above is printable ASCII, 2 not */
    int has_aud;                       /* 1: the token has an aud claim */
    int refs;                          /* private: use the functions below */
    cJSON *tree;                       /* private: the payload's tree (sk_claims_tree) */
    char buf[];                        /* private: what the pointers above point into */
} sk_claims;

/* The longest token policy p takes (inline: the validator asks per request). */
static inline size_t sk_policy_token_max(const sk_policy *p)
{
    return p->max_token_len ? p->max_token_len : SK_TOKEN_MAX_DEFAULT;
}

sk_claims *sk_claims_ref(sk_claims *c);
void sk_claims_unref(sk_claims *c);

/* A fresh tree of the whole payload (any claim, with its JSON type), which
 * the caller frees with cJSON_Delete; NULL when out of memory. Each call
 * parses: for reading, sk_claims_tree. */
cJSON *sk_claims_parse(const sk_claims *c);

/* The payload's tree, read-only, parsed on the first call and kept as long as
 * c: a cached token's Require rules parse nothing per request (profiled: an
 * uncached tree was 18.8k instructions and ~50 mallocs per request). Safe
 * from any thread: cJSON's lookups do not write. NULL when c is NULL or out of
 * memory. Fields such as c->sub need no tree: use them where they will do. */
const cJSON *sk_claims_tree(const sk_claims *c);

/* Claim name of a session: the access token a's, else the ID token id's (id
 * may be NULL), from their trees; NULL when neither has it. */
const cJSON *sk_claims_lookup(const sk_claims *a, const sk_claims *id, const char *name);

/* Short, non-reversible name of a token for log lines: the first 12 hex
 * characters of its SHA-256. out must hold 13 bytes. Never log the token. */
void sk_token_hash(const char *token, size_t len, char out[13]);

/* SHA-256 of data through a digest fetched once: OpenSSL 3's one-shot
 * SHA256() looks the algorithm up on every call (profiled: its 5.8k
 * instructions for a 43-byte session id became 3.4k). APR_SUCCESS, or
 * APR_EGENERAL when OpenSSL could not (out is then undefined). */
apr_status_t sk_sha256(const void *data, size_t len, unsigned char out[32]);

/* Decode a token's payload WITHOUT verifying it: for a token whose signature
 * was verified elsewhere (sk_validate_vouched), diagnostics and tests, never
 * for a decision on a client's token. Returns NULL when malformed. When text
 * is not NULL it receives the decoded payload text the tree was parsed from
 * (malloc'd, NUL-terminated, *text_len bytes; NULL whenever the tree is). */
cJSON *sk_jwt_peek_payload(const char *token, size_t len, char **text, size_t *text_len);

struct sk_keystore;

/* The validator: a policy, the key store it verifies against, and a bounded,
 * thread-safe cache of results keyed by the whole token (entries live until
 * the token's exp + leeway; with check_exp = 0, one hour, then the token is
 * validated afresh). Only successes are cached; cache_entries 0 disables the
 * cache. The policy struct is copied, its strings and audience array are
 * borrowed. The module creates one per policy at start-up (post_config), in
 * httpd's parent before any thread runs; each child process has its copy by
 * fork (its cache empty then) and fills it for itself. Not to be used across
 * a fork while another thread may hold one of its locks. */
typedef struct sk_validator sk_validator;

sk_validator *sk_validator_create(const sk_policy *policy, struct sk_keystore *keys,
                                  size_t cache_entries);
void sk_validator_destroy(sk_validator *v);

/* Validate a token at time now (seconds since the epoch). On SK_JWT_OK, *out
 * holds a reference the caller drops with sk_claims_unref. On
 * SK_JWT_E_EXPIRED the token was otherwise valid and *out is still set (the
 * caller may want its sub or sid), else *out is NULL. */
sk_jwt_err sk_validate(sk_validator *v, const char *token, size_t len, int64_t now,
                       sk_claims **out);

/* sk_validate for a token that may lack an aud claim: Scalekit's
 * client_credentials tokens carry none unless the API client was registered
 * with an audience. A token without aud passes the audience check (one with
 * an aud must still name one of the policy's) and every other check as
 * usual; c->has_aud tells the caller which it was, and the caller decides,
 * per request, whether an aud-less token is acceptable (ScalekitMachineClients).
 * Results are cached by token alone: sk_validate and sk_validate_vouched
 * refuse a cached aud-less result (SK_JWT_E_AUD), so a token accepted here is
 * never accepted by them. */
sk_jwt_err sk_validate_audless(sk_validator *v, const char *token, size_t len, int64_t now,
                               sk_claims **out);

/* The same for a token whose signature was verified elsewhere by a party
 * that holds this server's sealing key, and that says so in a sealed record
 * (a session store record): on a cache miss the payload is decoded and its
 * claims are checked as above, but no signature is verified and no key is
 * needed. Never use it for a token that arrived from a client. */
sk_jwt_err sk_validate_vouched(sk_validator *v, const char *token, size_t len, int64_t now,
                               sk_claims **out);

/* Claims from a value that is not a token (a sealed cookie of the module's):
 * one reference, or NULL when the value does not open. */
typedef sk_claims *sk_claims_opener(void *ctx, const char *value, size_t len);

/* The validator's cache for such values: on a miss open makes the claims (no
 * signature, key or claim is checked: open vouches for them), kept as a
 * check_exp=0 policy keeps tokens (an hour, then opened afresh) and keyed
 * the same way: the value's last 16 bytes must be unforgeable (an AEAD tag)
 * and a hit compares it whole. SK_JWT_OK with *out, SK_JWT_E_SIGNATURE when
 * the value does not open, SK_JWT_E_TOO_LARGE. Use a validator of its own. */
sk_jwt_err sk_validate_opened(sk_validator *v, const char *value, size_t len, int64_t now,
                              sk_claims_opener *open, void *ctx, sk_claims **out);

/* Counters, for the status handler and the benchmarks. */
typedef struct sk_validator_stats {
    uint64_t validations, cache_hits, cache_entries, evictions;
    uint64_t vouched;                  /* cold validations taken on a record's word */
    uint64_t failures[SK_JWT_E__COUNT];
} sk_validator_stats;
void sk_validator_get_stats(sk_validator *v, sk_validator_stats *out);

/* This thread's number in the process (1, 2, ...), for spreading shared
 * counters and locks over shards. */
unsigned sk_thread_number(void);

/* ---- Lower layers of sk_validate, without the cache (tests, fuzzers, the
 * benchmark, and callers that want one step only). ---- */

/* Parse a token, check its header against policy, find its key in keys and
 * verify its signature; no claim is looked at. On SK_JWT_OK *payload holds
 * the payload object, which the caller frees with cJSON_Delete, and, when
 * text is not NULL, *text the payload text as for sk_jwt_peek_payload. */
sk_jwt_err sk_jwt_verify(const char *token, size_t len, const sk_policy *policy,
                         struct sk_keystore *keys, int64_t now, cJSON **payload,
                         char **text, size_t *text_len);

/* Check a verified payload's claims at time now: exp/nbf/iat types, iss, aud,
 * nbf, iat, and exp last, so SK_JWT_E_EXPIRED means all else was good. A
 * policy with no issuer or no audiences refuses every token. */
sk_jwt_err sk_jwt_check_claims(const cJSON *payload, const sk_policy *policy, int64_t now);

/* The same, except that a payload with no aud claim at all passes the
 * audience check (one with an aud is checked as ever); it must then carry no
 * azp, an ID token's mark (sk_validate_audless). */
sk_jwt_err sk_jwt_check_claims_audless(const cJSON *payload, const sk_policy *policy,
                                       int64_t now);

/* Make a claims object holding one reference from a payload object and the
 * text it was parsed from (kept for sk_claims_parse); takes ownership of
 * payload and frees it (also on failure), copies text. NULL when out of
 * memory or text is NULL. */
sk_claims *sk_claims_new(cJSON *payload, const char *text, size_t text_len);

#endif
