/* httpd_revoke.c: ScalekitRevokeOnLogout — end the Scalekit session itself on
 * sign-out: POST ENV/api/v1/sessions/{sid}/revoke with a client_credentials
 * token, which is kept (per process) until shortly before it expires. */
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_strings.h"
#include "apr_lib.h"

#include "sk_module.h"
#include "sk_oauth.h"

static pthread_mutex_t sk_m2m_lock = PTHREAD_MUTEX_INITIALIZER;
static char *sk_m2m_token;            /* malloc'd: it outlives requests */
static apr_time_t sk_m2m_until;

/* A management token: the cached one, or a new one from the token endpoint. */
static const char *sk_m2m(request_rec *r, sk_server_conf *c)
{
    const char *token = NULL;
    pthread_mutex_lock(&sk_m2m_lock);
    if (sk_m2m_token && apr_time_now() < sk_m2m_until)
        token = apr_pstrdup(r->pool, sk_m2m_token);
    pthread_mutex_unlock(&sk_m2m_lock);
    if (token)
        return token;
    sk_http_resp resp;
    sk_token_set ts;
    const char *why;
    const char *body = sk_oauth_client_credentials_body(r->pool, c->client_id,
                                                        c->client_secret, NULL);
    if (sk_http_request(&c->rt->http, c->rt->token_url, body, &resp) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke: token endpoint unreachable: "
                      "%s", resp.err);
        return NULL;
    }
    int bad = sk_oauth_parse_token_response(r->pool, resp.status, resp.body, resp.len, &ts,
                                            &why);
    sk_http_resp_free(&resp);
    if (bad) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke: no management token: %s", why);
        return NULL;
    }
    long life = ts.expires_in > 120 ? ts.expires_in - 60 : 60;
    pthread_mutex_lock(&sk_m2m_lock);
    free(sk_m2m_token);
    sk_m2m_token = strdup(ts.access_token);
    sk_m2m_until = apr_time_now() + apr_time_from_sec(life);
    pthread_mutex_unlock(&sk_m2m_lock);
    return ts.access_token;
}

static int sk_sid_ok(const char *sid)
{
    if (!*sid || strlen(sid) > 128)
        return 0;
    for (; *sid; sid++)
        if (!apr_isalnum(*sid) && *sid != '_' && *sid != '-')
            return 0;
    return 1;
}

void sk_revoke_session(request_rec *r, const char *sid)
{
    sk_server_conf *c = sk_server_config(r);
    if (!sk_sid_ok(sid))
        return;
    const char *token = sk_m2m(r, c);
    if (!token)
        return;
    sk_http_opts o = c->rt->http;
    o.bearer = token;
    sk_http_resp resp;
    const char *url = apr_pstrcat(r->pool, c->env_url, "/api/v1/sessions/", sid, "/revoke",
                                  NULL);
    if (sk_http_request(&o, url, "", &resp) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke of session %s failed: %s",
                      sid, resp.err);
        return;
    }
    ap_log_rerror(APLOG_MARK, resp.status == 200 ? APLOG_INFO : APLOG_WARNING, 0, r,
                  "revoke of Scalekit session %s: status %ld", sid, resp.status);
    if (resp.status == 401) {                  /* the cached token went stale: drop it */
        pthread_mutex_lock(&sk_m2m_lock);
        sk_m2m_until = 0;
        pthread_mutex_unlock(&sk_m2m_lock);
    }
    sk_http_resp_free(&resp);
}
