/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_login.c: starting a sign-in: the state cookie (sealed: state, nonce,
 * PKCE verifier, where to return), the bound on pending ones, and the
 * redirect to Scalekit's authorization endpoint. */
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "apr_strings.h"

#include "sk_module.h"
#include "sk_cookie.h"
#include "sk_oauth.h"

/* Keep at most state_max - 1 pending sign-ins, and room for the new one. */
static void sk_bound_pending(request_rec *r, sk_server_conf *c, size_t new_size)
{
    const apr_array_header_t *drop = sk_state_cookies_to_drop(r->pool, sk_cookie_header(r),
                                                              c->cookie_state, c->state_max,
                                                              new_size);
    for (int i = 0; i < drop->nelts; i++)
        sk_set_cookie(r, APR_ARRAY_IDX(drop, i, const char *), NULL, SK_COOKIE_CLEAR);
}

/* The cookie of one pending sign-in is named after its state. */
const char *sk_state_cookie_name(request_rec *r, const char *state)
{
    sk_server_conf *c = sk_server_config(r);
    return apr_pstrcat(r->pool, c->cookie_state, apr_pstrndup(r->pool, state, 16), NULL);
}

/* A sign-in that cannot start safely: a logged 500, never a redirect. */
static int sk_login_fail(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "sign-in cannot start: %s", why);
    return HTTP_INTERNAL_SERVER_ERROR;
}

int sk_start_login(request_rec *r, const char *return_to, const sk_login_params *params,
                   int silent, const char *switch_to)
{
    sk_server_conf *c = sk_server_config(r);
    apr_pool_t *p = r->pool;
    const char *callback = sk_callback_url(r);
    if (!callback)
        return sk_error_page(r, HTTP_BAD_REQUEST, "Unknown host",
                             "This site is not served under the name the request gave.");
    /* The parameters ride in the state too: a silent sign-in's retry with a
     * prompt asks for the same organization, connection or hint. */
    sk_login_state st = { sk_random_b64url(p, 32), sk_random_b64url(p, 32),
                          sk_random_b64url(p, 32), return_to, (int64_t)apr_time_sec(r->request_time),
                          silent, params ? sk_login_params_query(p, params) : NULL, switch_to,
                          /* the callback's token request sends the very one sent here */
                          callback == c->redirect_uri ? NULL : callback };
    if (!st.state || !st.nonce || !st.verifier)
        return sk_login_fail(r, "no random bytes for the state, nonce or PKCE verifier");
    const char *challenge = sk_pkce_challenge(p, st.verifier);
    if (!challenge)
        return sk_login_fail(r, "no PKCE challenge (SHA-256 failed)");
    const char *sealed = sk_login_state_seal(p, c->rt->sealer, &st);
    if (!sealed)
        return sk_login_fail(r, "the sign-in state could not be sealed");
    sk_authorize_req q = { 0 };
    if (params)
        sk_login_params_apply(params, &q);
    q.env_url = c->env_url;
    q.client_id = c->client_id;
    q.redirect_uri = callback;
    q.scope = c->scope;
    q.state = st.state;
    q.nonce = st.nonce;
    q.code_challenge = challenge;
    if (silent)
        q.prompt = "none";
    const char *name = sk_state_cookie_name(r, st.state);
    sk_bound_pending(r, c, strlen(name) + strlen(sealed) + 3);
    sk_count(SK_C_LOGIN);
    sk_set_cookie(r, name, sealed, c->state_ttl);      /* gone with the sign-in's time */
    apr_table_setn(r->err_headers_out, "Location", sk_oauth_authorize_url(p, &q));
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "sign-in starts: state %s, return to %s%s%s%s",
                  sk_short_hash(p, st.state), return_to, silent ? ", silent" : "",
                  switch_to ? ", organization switch to " : "", switch_to ? switch_to : "");
    return HTTP_MOVED_TEMPORARILY;
}
