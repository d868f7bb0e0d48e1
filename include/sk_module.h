/* SPDX-License-Identifier: Apache-2.0 */
/* sk_module.h: what the httpd side of mod_scalekit shares between its files:
 * the configuration, the per-server runtime, and the request helpers. */
#ifndef SK_MODULE_H
#define SK_MODULE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "util_filter.h"
#include "ap_socache.h"
#include "ap_expr.h"
#include "apr_global_mutex.h"
#include "apr_thread_mutex.h"

#include "sk_jwt.h"
#include "sk_keys.h"
#include "sk_http.h"
#include "sk_state.h"
#include "sk_oauth.h"
#include "sk_cookie.h"
#include "sk_text.h"

extern module AP_MODULE_DECLARE_DATA scalekit_module;
#ifndef SK_MODULE_MAIN          /* mod_scalekit.c declares it with the module */
APLOG_USE_MODULE(scalekit);
#endif

#define SK_AUTH_TYPE "Scalekit"
#define SK_HANDLER   "scalekit"

/* What a protected location does for a request without a valid session. */
typedef enum {
    SK_UNAUTH_AUTO = 0,     /* browser navigations sign in, other requests get 401 */
    SK_UNAUTH_LOGIN,        /* always start a sign-in */
    SK_UNAUTH_401,          /* always 401 (APIs) */
    SK_UNAUTH_PASS          /* let the request through without a user */
} sk_unauth_action;

/* ScalekitRevokeOnLogout's management token (httpd_revoke.c), one per
 * server: a virtual host's client and environment are its own. */
typedef struct sk_m2m_cache {
    apr_thread_mutex_t *lock;   /* threads of one process (event, worker) */
    char *token;                /* malloc'd: it outlives requests */
    apr_time_t until;
} sk_m2m_cache;

/* Per-process objects built once at start-up from a server's settings. */
typedef struct sk_runtime {
    sk_keystore *keys;
    sk_validator *access;       /* access tokens: exp enforced */
    sk_validator *id;           /* ID tokens kept in a session: profile only */
    sk_validator *logout;       /* back-channel logout tokens */
    sk_validator *profile;      /* profile cookies: opened once per process (sk_profile.h) */
    sk_policy access_policy, id_policy, logout_policy;
    sk_sealer *sealer;          /* state cookies */
    sk_sealer *record_sealer;   /* session store records */
    sk_http_opts http;
    const char *jwks_url, *token_url, *redirect_path;
    const char *switch_cookie;  /* the finished organization switch's mark */
    const char *id_cookie_path; /* the ID token cookie's Path, the sign-in handler's; NULL:
                                 * "/", and no profile cookie (the ID token goes everywhere) */
    const char *jwks_cache_key; /* where the last good JWKS is shared (httpd_shared.c) */
    server_rec *s;              /* for log lines from the key fetcher */
    sk_m2m_cache m2m;
    sk_cookie_names own_cookies;  /* stripped from every request (ScalekitStripCookies) */
} sk_runtime;

/* A session store: an httpd shared object cache (httpd_store.c) or Redis of
 * the module's own (httpd_redis.c), behind three operations. They take no
 * lock of their own: callers hold the global mutex when not_mp_safe. */
typedef struct sk_store sk_store;
typedef struct sk_store_ops {
    /* APR_SUCCESS with *len bytes in buf (*len: its room on the way in),
     * APR_NOTFOUND, or another status when the store failed. */
    apr_status_t (*get)(const sk_store *st, server_rec *s, const char *key,
                        unsigned char *buf, unsigned int *len, apr_pool_t *p);
    apr_status_t (*put)(const sk_store *st, server_rec *s, const char *key,
                        const char *value, apr_time_t keep, apr_pool_t *p);
    apr_status_t (*remove)(const sk_store *st, server_rec *s, const char *key,
                           apr_pool_t *p);
    /* put only where key holds nothing (else APR_EEXIST), at once for every
     * server of the store; NULL when the store cannot. */
    apr_status_t (*add)(const sk_store *st, server_rec *s, const char *key,
                        const char *value, apr_time_t keep, apr_pool_t *p);
} sk_store_ops;

struct sk_store {
    const sk_store_ops *ops;
    ap_socache_provider_t *provider;    /* a shared object cache's */
    ap_socache_instance_t *instance;
    struct sk_redis *redis;             /* redis://: its connections */
    int not_mp_safe;                /* shmcb: operations under the global mutex */
    int copies;                     /* shmcb: processes keep copies (httpd_store_copy.c) */
    int remote;                     /* written by other machines too (not shmcb) */
    int64_t polled;                 /* sign-out generation: last looked at (atomic) */
    uint64_t remote_gen, remote_bumps;  /* its value, and how often it changed (atomics) */
};
extern const sk_store_ops sk_socache_ops;

/* A session's tokens, wherever they are kept. */
typedef struct sk_tokens {
    const char *access, *id, *refresh;
    const char *profile;            /* cookies: the sealed profile cookie the request sent */
    const sk_claims *id_claims;     /* to save: id's verified claims, sealed into a new
                                     * profile cookie (NULL: none) */
    const char *key;                /* store key of the session, NULL with cookies */
    int64_t vouched;                /* store: both tokens verified by a server until then */
    int64_t expires;                /* store: when the record expires (0: not said) */
    int gone;                       /* a session cookie whose record is gone */
    int store_failed;               /* the store did not answer */
} sk_tokens;

typedef struct sk_server_conf {
    const char *env_url, *client_id, *client_secret, *redirect_uri;
    const char *scope, *ca_file, *post_logout_uri, *remote_user_claim;
    const char *cookie_access, *cookie_id, *cookie_refresh, *cookie_state, *cookie_session;
    const char *cookie_profile;
    const char *store_provider, *store_args;   /* ScalekitSessionStore; NULL: cookies */
    const struct sk_redis_url *store_redis;    /* redis://: its address (store_provider
                                                * is then its display form) */
    const char *store_password;                /* ScalekitSessionStorePassword */
    int session_max_age, store_failure_login, revoke_on_logout;
    const char *cookie_domain, *cookie_samesite;
    int cookie_secure;                    /* -1 auto (Secure on https), 0, 1 */
    apr_array_header_t *audiences;        /* accepted besides the client id */
    apr_array_header_t *redirect_origins; /* absolute return_to origins allowed */
    unsigned algs;
    int leeway, timeout, jwks_ttl, jwks_min_refetch, state_ttl, state_max;
    int cache_entries;

    unsigned env_url_set:1, client_id_set:1, client_secret_set:1, redirect_uri_set:1,
        scope_set:1, ca_file_set:1, post_logout_uri_set:1, remote_user_claim_set:1,
        cookie_names_set:1, cookie_domain_set:1, cookie_samesite_set:1,
        cookie_secure_set:1, audiences_set:1, redirect_origins_set:1, algs_set:1,
        leeway_set:1, timeout_set:1, jwks_ttl_set:1, jwks_min_refetch_set:1,
        state_ttl_set:1, state_max_set:1, cache_entries_set:1, store_provider_set:1,
        session_max_age_set:1, store_failure_login_set:1, revoke_on_logout_set:1,
        store_password_set:1;

    const char *where;          /* file:line of the first Scalekit directive */
    sk_store *store;            /* built at post_config from store_provider */
    sk_runtime *rt;             /* NULL while the server does not use Scalekit */
} sk_server_conf;

/* The claims ScalekitEnvVars names beyond the fixed words, with their
 * variable and header names made once when the configuration is read. */
typedef struct sk_custom_claim {
    const char *claim;          /* the claim's name in the token, as written */
    const char *env;            /* SCALEKIT_ and the name upper-cased, others '_' */
    const char *suffix;         /* header name after the prefix, e.g. Plan, Given-Name */
    const char *header;         /* prefix and suffix, when prefix below is set */
} sk_custom_claim;
typedef struct sk_custom_claims {
    const char *prefix;         /* the ScalekitClaimHeaders prefix header was made with */
    int n;
    sk_custom_claim claim[];
} sk_custom_claims;

typedef struct sk_dir_conf {
    sk_unauth_action unauth;
    int bearer;                       /* accept Authorization: Bearer */
    const char *header_prefix;        /* claims as request headers, or NULL */
    ap_expr_info_t *login_if;         /* overrides the navigation test */
    int silent;                       /* try prompt=none first (shared Scalekit session) */
    int strip_cookies;                /* remove the module's cookies before the application */
    unsigned env_vars;                /* bits of sk_published: which variables are set */
    sk_custom_claims *custom;         /* ScalekitEnvVars' other claims, or NULL */
    int pass_token;                   /* the access token upstream as Authorization */
    apr_array_header_t *machine_clients;  /* client ids whose aud-less bearer tokens pass */
    const sk_login_params *login_params;  /* ScalekitLoginParams, or NULL */
    int unauthz_login;                /* ScalekitUnauthzAction login: switch organization */
    unsigned unauth_set:1, bearer_set:1, header_prefix_set:1, login_if_set:1, silent_set:1,
        strip_cookies_set:1, env_vars_set:1, pass_token_set:1, machine_clients_set:1,
        login_params_set:1, unauthz_login_set:1;
} sk_dir_conf;

/* What the application is told of the user, in one order for ScalekitEnvVars
 * (word, bit 1 << index), the environment and ScalekitClaimHeaders. */
typedef struct sk_published_claim {
    const char *word, *env, *header;
} sk_published_claim;
#define SK_PUBLISHED_COUNT 8
#define SK_ENV_ALL ((1u << SK_PUBLISHED_COUNT) - 1)
extern const sk_published_claim sk_published[SK_PUBLISHED_COUNT];

/* REMOTE_USER and every value of sk_published as a session's claims give
 * them, when all are printable as they are (no copy made safe in a pool):
 * worked out once and kept by the connection's memo (httpd_memo.c). */
typedef struct sk_published_set {
    const char *user;           /* NULL: not worked out yet */
    const char *v[SK_PUBLISHED_COUNT];
} sk_published_set;

/* The claims of a request's session, kept in its request_config. */
typedef struct sk_request_session {
    sk_claims *access;          /* validated access token */
    sk_claims *id;              /* validated ID token, or NULL */
    const char *access_token;   /* the access token's text (ScalekitPassAccessToken) */
    const char *machine_client; /* a ScalekitMachineClients client's bearer token: its id */
    sk_published_set *published;    /* the memo's, for these claims, or NULL */
    int from_memo;              /* 1: the connection's memo gave it (counted as such) */
} sk_request_session;

/* Shared across processes: the socache instance and the mutex around it. */
typedef struct sk_shared {
    ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;
} sk_shared;

extern sk_shared sk_shared_store;
#define SK_MUTEX_TYPE "scalekit-refresh"

/* httpd_util.c */
sk_server_conf *sk_server_config(request_rec *r);
int sk_is_https(request_rec *r);
/* life: SK_COOKIE_SESSION (until the browser closes), SK_COOKIE_CLEAR, or seconds. */
#define SK_COOKIE_SESSION 0
#define SK_COOKIE_CLEAR   (-1)
void sk_set_cookie(request_rec *r, const char *name, const char *value, int life);
/* The same with another Path than "/". */
void sk_set_cookie_at(request_rec *r, const char *name, const char *value, int life,
                      const char *path);
void sk_clear_session_cookies(request_rec *r);
const char *sk_request_cookie(request_rec *r, const char *name);
void sk_request_cookies(request_rec *r, const char *const *names, const char **values, int n);
int sk_error_page(request_rec *r, int status, const char *title, const char *detail);
int sk_is_navigation(request_rec *r);
const char *sk_short_hash(apr_pool_t *p, const char *token);
/* A shared-cache key for value: base64url(SHA-256(value)) ":" kind. */
const char *sk_hashed_key(apr_pool_t *p, const char *kind, const char *value);
/* Memory kept by the parent process across generations (graceful restarts),
 * under a tag: what an earlier generation kept, or NULL; keep it. */
void *sk_process_find(server_rec *s, const char *tag);
apr_status_t sk_process_keep(server_rec *s, const char *tag, void *data);
/* Zeroed shared memory made before the children fork, kept like the above;
 * NULL (logged) when there is none. */
void *sk_process_shm(server_rec *s, const char *tag, apr_size_t size);
const char *sk_login_path(request_rec *r);
/* The callback URL for a sign-in starting on r: an absolute ScalekitRedirectURI
 * as written; a path made absolute on r's scheme, host and port, or NULL
 * (logged) when r's host is not a ServerName or ServerAlias of its server. */
const char *sk_callback_url(request_rec *r);

/* The module's request notes are named "sk-" and a letter of their own:
 * apr tables compare the first four bytes (as a checksum) before a name. */

/* The Cookie header as the client sent it, for the module's own reads: the
 * fixups hook takes the module's cookies out of headers_in before the
 * application runs (on this request, or on the one it is a subrequest or an
 * internal redirect of), keeping the original in this note. */
#define SK_NOTE_COOKIE "sk-cookie"
const char *sk_cookie_header(request_rec *r);
/* A response that sets a cookie of the module is marked so (a request note,
 * seen through internal redirects) and gets Cache-Control: private. */
#define SK_NOTE_PRIVATE "sk-private"
#define SK_PRIVATE_FILTER "SCALEKIT_PRIVATE"
const char *sk_request_note(request_rec *r, const char *name);
apr_status_t sk_private_filter(ap_filter_t *f, apr_bucket_brigade *bb);
void sk_insert_private_filter(request_rec *r);

/* httpd_login.c */
/* Send the browser to sign in: params (may be NULL) go into the authorization
 * request; switch_to (or NULL) marks an organization switch (httpd_authz.c). */
int sk_start_login(request_rec *r, const char *return_to, const sk_login_params *params,
                   int silent, const char *switch_to);
/* The cookie of the pending sign-in with this state. */
const char *sk_state_cookie_name(request_rec *r, const char *state);

/* httpd_session.c */
int sk_check_authn(request_rec *r);
/* Whether a request may be sent to sign in: ScalekitLoginIf, else a browser navigation. */
int sk_is_login_wanted(request_rec *r, const sk_dir_conf *d);
/* header_parser (access_checker for subrequests): the claim headers'
 * look-alikes out of every request of a location with ScalekitClaimHeaders. */
#define SK_NOTE_SCRUBBED "sk-scrubbed"
int sk_scrub_claim_lookalikes(request_rec *r);
extern int sk_claim_headers_used;     /* mod_scalekit.c: some section sets ScalekitClaimHeaders */
int sk_scrub_subrequest_lookalikes(request_rec *r);
/* The client's own Authorization header (or "" for none), kept where
 * ScalekitPassAccessToken replaced it with the session's access token: the
 * fixups hook puts it back at a location without the option that an
 * internal redirect or subrequest reaches, and removes an Authorization the
 * module did not set at one with it. */
#define SK_NOTE_AUTHZ "sk-authorization"
/* fixups: the module's cookies out of every request, before the handler. */
int sk_strip_cookies_fixup(request_rec *r);
/* The client's Cookie header was header; the application gets kept (the
 * header without the module's cookies; "" removes it). */
void sk_cookies_stripped(request_rec *r, const char *header, const char *kept);
int sk_find_session(request_rec *r, sk_request_session **out, int *had);
/* Validate a session's tokens (vouched: until when a store record says a server
 * verified them) and keep their claims for the request: SK_JWT_OK with *out,
 * or why they were refused (logged). profile: a sealed profile cookie, taken in
 * the ID token's place when id is NULL (NULL: none). */
sk_jwt_err sk_validate_into_request(request_rec *r, const char *access, const char *id,
                                    const char *profile, int64_t vouched,
                                    sk_request_session **out);
sk_request_session *sk_request_session_get(request_rec *r);
/* A session for r, its claims' references dropped with r's pool. */
sk_request_session *sk_request_session_new(request_rec *r);

/* httpd_memo.c: the session of a connection's last request, for the next
 * one that sends the same Cookie header. 1 with *out set when it applies. */
int sk_memo_session(request_rec *r, const sk_dir_conf *d, sk_request_session **out);
/* After rs was validated from the cookies (access token token) of r. */
void sk_memo_keep(request_rec *r, const sk_dir_conf *d, sk_request_session *rs,
                  const char *token);
/* 1 when ID token id belongs to access token a's Scalekit session (same user,
 * same sid; without a sid in a, no other organization). */
int sk_id_token_bound(const sk_claims *a, const sk_claims *id);

/* httpd_refresh.c */
typedef struct sk_refresh_result {
    const char *access_token, *id_token, *refresh_token;
    const char *error;          /* NULL on success; a log-safe reason otherwise */
    int unavailable;            /* 1: the identity provider could not be reached */
    int reused;                 /* 1: a parallel request's answer, no call of ours */
} sk_refresh_result;
/* bind: with cookie sessions, the expired access token the request carried:
 * only a request with the same pair shares the answer (NULL: the store's). */
void sk_refresh(request_rec *r, const char *refresh_token, const char *bind,
                sk_refresh_result *out);
/* Cookie sessions: whether a refresh of this refresh token and session (the
 * expired access token) failed lately, or too many did on this machine. */
typedef enum { SK_LIMIT_NONE, SK_LIMIT_SESSION, SK_LIMIT_SERVER } sk_refresh_limit;
sk_refresh_limit sk_refresh_limited(request_rec *r, const char *refresh, const char *session);
/* Remember a failed refresh; called: this request made the call (it counts
 * against the server's budget). */
void sk_refresh_failed(request_rec *r, const char *refresh, const char *session, int called);

/* httpd_shared.c: shmcb instances and the global mutex, kept across graceful
 * restarts; the last good JWKS shared by this server's children. */
apr_status_t sk_socache_open(server_rec *s, apr_pool_t *pconf, apr_pool_t *ptemp,
                             const char *name, const char *args, const char *ns,
                             const struct ap_socache_hints *hints,
                             ap_socache_provider_t **provider,
                             ap_socache_instance_t **instance, const char **err);
/* At check_config, which "apache2 -t" runs and post_config is not: NULL, or
 * why the shared cache could not be opened (mod_socache_shmcb not loaded). */
const char *sk_shared_check(void);
apr_status_t sk_shared_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void sk_shared_child_init(apr_pool_t *p, server_rec *s);
void sk_shared_keys(apr_pool_t *pconf, sk_runtime *rt);

/* httpd_store.c */
const char *sk_store_check(apr_pool_t *p, const sk_server_conf *c);
apr_status_t sk_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                  sk_server_conf *c);
int sk_tokens_load(request_rec *r, sk_tokens *t);
int sk_tokens_save(request_rec *r, sk_tokens *t);
void sk_tokens_clear(request_rec *r, const sk_tokens *t);
int sk_tokens_reload(request_rec *r, sk_tokens *t, const char *spent_refresh);
/* 1 when a stored session's record is gone (signed out, back-channel logout)
 * since this request read it; 0 with cookies or when the store did not say. */
int sk_is_session_ended(request_rec *r, const sk_tokens *t);
/* A key's value (APR_SUCCESS with *out), APR_NOTFOUND, or the store's failure;
 * _small for values of at most max bytes. */
apr_status_t sk_store_get(request_rec *r, const sk_store *st, const char *key, char **out);
apr_status_t sk_store_get_small(request_rec *r, const sk_store *st, const char *key,
                               unsigned int max, char **out);
apr_status_t sk_store_put(request_rec *r, const sk_store *st, const char *key,
                          const char *value, apr_time_t keep);

/* httpd_signout.c: back-channel logout by "signed out at" marks */
void sk_signout_post_config(server_rec *s);
/* Where marks (and logout tokens' jti) are kept: the session store, else the
 * shared cache; NULL when neither is there. */
sk_store *sk_signout_store(const sk_server_conf *c);
/* Sessions of sid (or, without one, every session of sub) whose access
 * tokens were issued at or before at are over. */
apr_status_t sk_signout_mark(request_rec *r, const char *sid, const char *sub, int64_t at);
/* 1 when access token a's session was signed out so (cheap on a warm token). */
int sk_is_signed_out(request_rec *r, sk_claims *a);

/* httpd_redis.c: a redis:// session store */
const char *sk_redis_check(apr_pool_t *p, const sk_server_conf *c);
apr_status_t sk_redis_post_config(apr_pool_t *pconf, server_rec *s, const sk_server_conf *c,
                                  sk_store *st);
extern const sk_store_ops sk_redis_ops;
/* 1 while Redis' invalidations arrive: this process's copies may be used. */
int sk_redis_copies_live(const sk_store *st);
void sk_redis_child_init(apr_pool_t *pchild, server_rec *s);

/* httpd_store_copy.c */
int sk_store_copy_init(server_rec *s);
/* 1 with t (key included) from this process's copy of session sid's record
 * in store (a virtual host's own: its copies are not another's). */
int sk_store_copy_get(request_rec *r, const sk_store *store, const char *sid, sk_tokens *t);
/* The epoch of a store key: read it before reading the store, give it to put. */
apr_uint32_t sk_store_copy_epoch(const char *key);
void sk_store_copy_put(const sk_store *store, const char *sid, apr_uint32_t epoch,
                       const sk_tokens *t);
/* After writing or removing the record of key. */
void sk_store_copy_bump(const char *key);
/* When writes may have been missed: no copy read before counts. */
void sk_store_copy_bump_all(void);
int sk_store_jti_seen(request_rec *r, const char *jti, apr_time_t keep);

/* httpd_revoke.c */
/* Sets up rt's management token cache, freed with pool p. */
apr_status_t sk_revoke_init(apr_pool_t *p, sk_runtime *rt);
void sk_revoke_session(request_rec *r, const char *sid);

/* httpd_authz.c */
/* The Require scalekit-* providers. */
void sk_register_authz(apr_pool_t *p);
/* note_auth_failure: a refusal by our rules becomes a 403 page (or an
 * organization switch); insert_error_filter: its status. */
int sk_note_auth_failure(request_rec *r, const char *type);
void sk_forbidden_status(request_rec *r);
/* Seconds the mark of a finished organization switch lasts: the browser is
 * sent straight back, so a few seconds would do; a slow network gets more. */
#define SK_SWITCH_MARK_TTL 120

/* httpd_status.c: server-wide counters */
#define SK_STATUS_HANDLER "scalekit-status"
typedef enum {
    SK_C_AUTHN,                 /* read as VALID + MISSING, never counted */
    /* VALID: counted for sessions not from the memo, read with MEMO added */
    SK_C_VALID, SK_C_MISSING, SK_C_BEARER, SK_C_REFRESH, SK_C_REFRESH_FAIL,
    SK_C_REFRESH_REUSED, SK_C_LOGIN, SK_C_CALLBACK_OK, SK_C_CALLBACK_REFUSED, SK_C_LOGOUT,
    SK_C_FORBIDDEN, SK_C_STORE_COPY, SK_C_REFRESH_REFUSED, SK_C_REFRESH_LIMITED,
    SK_C_REFRESH_OK, SK_C_JWKS_FETCH, SK_C_JWKS_FETCH_FAIL, SK_C_STORE_READ, SK_C_STORE_ERROR,
    SK_C_MEMO, SK_C__COUNT
} sk_counter;
void sk_count(sk_counter c);
void sk_count_failure(sk_jwt_err e);
apr_status_t sk_status_post_config(apr_pool_t *pconf, server_rec *s);
int sk_status_handler(request_rec *r);

/* httpd_handler.c */
int sk_handler(request_rec *r);

#endif
