/* SPDX-License-Identifier: Apache-2.0 */
/* sk_oauth.h: Scalekit's OAuth 2.0 / OIDC messages: the authorization URL,
 * token-endpoint bodies and answers, the logout URL, PKCE. Links without httpd
 * (APR pools for strings). */
#ifndef SK_OAUTH_H
#define SK_OAUTH_H

#include <apr_pools.h>

/* What goes into an authorization request; NULL or "" fields are left out. */
typedef struct sk_authorize_req {
    const char *env_url, *client_id, *redirect_uri, *scope, *state, *nonce;
    const char *login_hint, *domain_hint, *connection_id, *organization_id;
    const char *code_challenge, *provider, *prompt;
} sk_authorize_req;

/* ENV/oauth/authorize?... with parameters in the Node SDK's order. */
char *sk_oauth_authorize_url(apr_pool_t *p, const sk_authorize_req *req);

/* The optional sign-in parameters Scalekit's authorization endpoint reads,
 * by index into sk_login_param_names; NULL when not given. */
enum { SK_LP_ORGANIZATION, SK_LP_CONNECTION, SK_LP_DOMAIN_HINT, SK_LP_LOGIN_HINT,
       SK_LP_PROVIDER, SK_LP_PROMPT, SK_LP_COUNT };
extern const char *const sk_login_param_names[SK_LP_COUNT];
typedef struct sk_login_params {
    const char *v[SK_LP_COUNT];
} sk_login_params;

/* The index of a parameter's name, or -1 when it is not one of them. */
int sk_login_param_index(const char *name);
/* Why value is not acceptable for parameter i (empty, too long, a control
 * byte, space or one of " ' < > \ `, a prompt or provider Scalekit does not
 * know), or NULL when it is. */
const char *sk_login_param_problem(int i, const char *value);
/* Copy the set parameters into an authorization request. */
void sk_login_params_apply(const sk_login_params *lp, sk_authorize_req *q);
/* "name=value&..." of the set parameters (escaped), "" when none; and back
 * (only names and values that pass sk_login_param_problem are read). */
char *sk_login_params_query(apr_pool_t *p, const sk_login_params *lp);
void sk_login_params_parse(apr_pool_t *p, const char *query, sk_login_params *out);

/* Form bodies for POST ENV/oauth/token (client_secret_post). */
char *sk_oauth_code_body(apr_pool_t *p, const char *client_id, const char *secret,
                         const char *code, const char *redirect_uri, const char *verifier);
char *sk_oauth_refresh_body(apr_pool_t *p, const char *client_id, const char *secret,
                            const char *refresh_token);
char *sk_oauth_client_credentials_body(apr_pool_t *p, const char *client_id,
                                       const char *secret, const char *scope);

typedef struct sk_token_set {
    const char *access_token, *id_token, *refresh_token;   /* NULL when absent */
    long expires_in;                                       /* 0 when absent */
} sk_token_set;

/* Read a token-endpoint answer. APR_SUCCESS on a 200 with an access token;
 * otherwise APR_EINVAL and *why says what went wrong in one line ("invalid_grant:
 * ...", "status 500", "answer is not JSON"), safe to log (no token in it). */
apr_status_t sk_oauth_parse_token_response(apr_pool_t *p, long status, const char *body,
                                           size_t len, sk_token_set *out, const char **why);

/* ENV/oidc/logout?id_token_hint=..&post_logout_redirect_uri=..&state=.. */
char *sk_oauth_logout_url(apr_pool_t *p, const char *env_url, const char *id_token_hint,
                          const char *post_logout_uri, const char *state);

/* Percent-encode every byte but A-Z a-z 0-9 - . _ ~ (upper-case hex). */
char *sk_url_escape(apr_pool_t *p, const char *s);
/* Value of name in a query string or form body, decoded (%XX and '+'); NULL
 * when absent, malformed or holding a NUL. */
const char *sk_query_get(apr_pool_t *p, const char *query, const char *name);

/* nbytes of randomness as base64url text (state, nonce, PKCE verifier). */
char *sk_random_b64url(apr_pool_t *p, size_t nbytes);
/* PKCE S256: base64url(SHA-256(verifier)). NULL when SHA-256 fails. */
char *sk_pkce_challenge(apr_pool_t *p, const char *verifier);

#endif
