/* SPDX-License-Identifier: Apache-2.0 */
/* oauth.c: building and reading Scalekit's OAuth messages. */
#include <string.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <cjson/cJSON.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "sk_oauth.h"
#include "sk_b64.h"
#include "sk_json.h"
#include "sk_jwt.h"

static int sk_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '-' || c == '.' || c == '_' || c == '~';
}

char *sk_url_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        n += sk_unreserved(*c) ? 1 : 3;
    char *out = apr_palloc(p, n + 1), *o = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (sk_unreserved(*c)) {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}

static int sk_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *sk_unescape_n(apr_pool_t *p, const char *s, size_t len)
{
    char *out = apr_palloc(p, len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len)
                return NULL;
            int hi = sk_hexval(s[i + 1]);
            int lo = sk_hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return NULL;
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

const char *sk_query_get(apr_pool_t *p, const char *query, const char *name)
{
    size_t nlen = strlen(name);
    const char *q = query;
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=')
            return sk_unescape_n(p, q + nlen + 1, len - nlen - 1);
        if (len == nlen && strncmp(q, name, nlen) == 0)
            return "";
        q = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Append "&name=value" (or "?name=value" for the first) when value is set. */
static void sk_param(apr_pool_t *p, apr_array_header_t *parts, const char *name,
                     const char *value)
{
    if (!value || !*value)
        return;
    const char *sep = parts->nelts ? "&" : "";
    APR_ARRAY_PUSH(parts, const char *) =
        apr_pstrcat(p, sep, name, "=", sk_url_escape(p, value), NULL);
}

static char *sk_join(apr_pool_t *p, apr_array_header_t *parts)
{
    return apr_array_pstrcat(p, parts, '\0');
}

char *sk_oauth_authorize_url(apr_pool_t *p, const sk_authorize_req *q)
{
    apr_array_header_t *a = apr_array_make(p, 16, sizeof(const char *));
    sk_param(p, a, "response_type", "code");
    sk_param(p, a, "client_id", q->client_id);
    sk_param(p, a, "redirect_uri", q->redirect_uri);
    sk_param(p, a, "scope", q->scope);
    sk_param(p, a, "state", q->state);
    sk_param(p, a, "nonce", q->nonce);
    sk_param(p, a, "login_hint", q->login_hint);
    sk_param(p, a, "domain_hint", q->domain_hint);
    sk_param(p, a, "domain", q->domain_hint);   /* older servers read this name */
    sk_param(p, a, "connection_id", q->connection_id);
    sk_param(p, a, "organization_id", q->organization_id);
    sk_param(p, a, "code_challenge", q->code_challenge);
    if (q->code_challenge && *q->code_challenge)
        sk_param(p, a, "code_challenge_method", "S256");
    sk_param(p, a, "provider", q->provider);
    sk_param(p, a, "prompt", q->prompt);
    return apr_pstrcat(p, q->env_url, "/oauth/authorize?", sk_join(p, a), NULL);
}

const char *const sk_login_param_names[SK_LP_COUNT] = {
    "organization_id", "connection_id", "domain_hint", "login_hint", "provider", "prompt"
};

int sk_login_param_index(const char *name)
{
    for (int i = 0; i < SK_LP_COUNT; i++)
        if (!strcmp(name, sk_login_param_names[i]))
            return i;
    return -1;
}

static int sk_listed(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(v, *list))
            return 1;
    return 0;
}

#define SK_LP_MAX 256           /* an email, a domain or an id; far longer is a mistake */

const char *sk_login_param_problem(int i, const char *v)
{
    static const char *const prompts[] = { "login", "create", "select_account", "none", NULL };
    static const char *const providers[] = { "google", "microsoft", "github", "gitlab",
                                             "linkedin", "salesforce", NULL };
    if (i < 0 || i >= SK_LP_COUNT)
        return "unknown parameter";
    if (!v || !*v)
        return "empty value";
    if (strlen(v) > SK_LP_MAX)
        return "value longer than 256 bytes";
    /* Escaped on the way out all the same; these never belong in an id, an
     * email or a domain, and would mark a pasted or injected value. */
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c <= 0x20 || *c == 0x7f || strchr("\"'<>\\`", *c))
            return "unsafe character (control, space, quote, < > \\ or `)";
    if (i == SK_LP_PROMPT && !sk_listed(v, prompts))
        return "prompt must be login, create, select_account or none";
    if (i == SK_LP_PROVIDER && !sk_listed(v, providers))
        return "provider must be google, microsoft, github, gitlab, linkedin or salesforce";
    return NULL;
}

void sk_login_params_apply(const sk_login_params *lp, sk_authorize_req *q)
{
    q->organization_id = lp->v[SK_LP_ORGANIZATION];
    q->connection_id = lp->v[SK_LP_CONNECTION];
    q->domain_hint = lp->v[SK_LP_DOMAIN_HINT];
    q->login_hint = lp->v[SK_LP_LOGIN_HINT];
    q->provider = lp->v[SK_LP_PROVIDER];
    q->prompt = lp->v[SK_LP_PROMPT];
}

char *sk_login_params_query(apr_pool_t *p, const sk_login_params *lp)
{
    apr_array_header_t *a = apr_array_make(p, SK_LP_COUNT, sizeof(const char *));
    for (int i = 0; i < SK_LP_COUNT; i++)
        sk_param(p, a, sk_login_param_names[i], lp->v[i]);
    return sk_join(p, a);
}

void sk_login_params_parse(apr_pool_t *p, const char *query, sk_login_params *out)
{
    for (int i = 0; i < SK_LP_COUNT; i++) {
        const char *v = query ? sk_query_get(p, query, sk_login_param_names[i]) : NULL;
        out->v[i] = v && !sk_login_param_problem(i, v) ? v : NULL;
    }
}

char *sk_oauth_code_body(apr_pool_t *p, const char *client_id, const char *secret,
                         const char *code, const char *redirect_uri, const char *verifier)
{
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(const char *));
    sk_param(p, a, "code", code);
    sk_param(p, a, "redirect_uri", redirect_uri);
    sk_param(p, a, "grant_type", "authorization_code");
    sk_param(p, a, "client_id", client_id);
    sk_param(p, a, "client_secret", secret);
    sk_param(p, a, "code_verifier", verifier);
    return sk_join(p, a);
}

char *sk_oauth_refresh_body(apr_pool_t *p, const char *client_id, const char *secret,
                            const char *refresh_token)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    sk_param(p, a, "grant_type", "refresh_token");
    sk_param(p, a, "client_id", client_id);
    sk_param(p, a, "client_secret", secret);
    sk_param(p, a, "refresh_token", refresh_token);
    return sk_join(p, a);
}

char *sk_oauth_client_credentials_body(apr_pool_t *p, const char *client_id,
                                       const char *secret, const char *scope)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    sk_param(p, a, "grant_type", "client_credentials");
    sk_param(p, a, "client_id", client_id);
    sk_param(p, a, "client_secret", secret);
    sk_param(p, a, "scope", scope);
    return sk_join(p, a);
}

/* A short printable excerpt of an error text from the identity provider. */
static const char *sk_safe_excerpt(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrndup(p, s ? s : "", 160);
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    return out;
}

apr_status_t sk_oauth_parse_token_response(apr_pool_t *p, long status, const char *body,
                                           size_t len, sk_token_set *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(j)) {
        *why = apr_psprintf(p, "status %ld, answer is not a JSON object", status);
        cJSON_Delete(j);
        return APR_EINVAL;
    }
    const char *err = sk_json_string(p, j, "error");
    if (status != 200 || err) {
        const char *desc = sk_json_string(p, j, "error_description");
        *why = apr_psprintf(p, "status %ld, %s%s%s", status,
                            err ? sk_safe_excerpt(p, err) : "no error code",
                            desc ? ": " : "", desc ? sk_safe_excerpt(p, desc) : "");
        cJSON_Delete(j);
        return APR_EINVAL;
    }
    out->access_token = sk_json_string(p, j, "access_token");
    out->id_token = sk_json_string(p, j, "id_token");
    out->refresh_token = sk_json_string(p, j, "refresh_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    out->expires_in = cJSON_IsNumber(exp) && exp->valuedouble > 0
                    && exp->valuedouble < 1e9 ? (long)exp->valuedouble : 0;
    cJSON_Delete(j);
    if (!out->access_token) {
        *why = "status 200 without an access_token";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

char *sk_oauth_logout_url(apr_pool_t *p, const char *env_url, const char *id_token_hint,
                          const char *post_logout_uri, const char *state)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(const char *));
    sk_param(p, a, "id_token_hint", id_token_hint);
    sk_param(p, a, "post_logout_redirect_uri", post_logout_uri);
    sk_param(p, a, "state", state);
    const char *q = sk_join(p, a);
    return apr_pstrcat(p, env_url, "/oidc/logout", *q ? "?" : "", q, NULL);
}

char *sk_random_b64url(apr_pool_t *p, size_t nbytes)
{
    unsigned char buf[64];
    if (nbytes > sizeof(buf) || RAND_bytes(buf, (int)nbytes) != 1)
        return NULL;
    char *out = apr_palloc(p, SK_B64URL_ENCLEN(nbytes) + 1);
    sk_b64url_encode(out, buf, nbytes);
    return out;
}

char *sk_pkce_challenge(apr_pool_t *p, const char *verifier)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    /* On failure md is uninitialised: no challenge rather than garbage. */
    if (sk_sha256(verifier, strlen(verifier), md) != APR_SUCCESS)
        return NULL;
    char *out = apr_palloc(p, SK_B64URL_ENCLEN(sizeof(md)) + 1);
    sk_b64url_encode(out, md, sizeof(md));
    return out;
}
