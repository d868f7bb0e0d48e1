/* SPDX-License-Identifier: Apache-2.0 */
/* mod_scalekit: Scalekit sign-in (OAuth 2.0 / OpenID Connect) for anything
 * Apache httpd serves. This file holds the configuration, the directive table
 * and the hook registration; the work is done in modules/. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_provider.h"
#include "mod_auth.h"
#include "util_mutex.h"
#include "apr_strings.h"
#include "apr_uri.h"
#include "apr_file_io.h"
#include "apr_lib.h"
#include "ap_expr.h"

#define SK_MODULE_MAIN
#include "sk_module.h"
#include "sk_redirect.h"
#include "sk_redis_url.h"

#define SK_DEFAULT_SCOPE   "openid profile email offline_access"

/* ------------------------------------------------------------ directives */

/* The server's settings; the first Scalekit directive's place is kept to
 * name it when a required setting turns out to be missing. */
static sk_server_conf *sk_cmd_conf(cmd_parms *cmd)
{
    sk_server_conf *c = ap_get_module_config(cmd->server->module_config, &scalekit_module);
    if (!c->where && cmd->directive)
        c->where = apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                                cmd->directive->line_num);
    return c;
}

static const char *sk_check_url(cmd_parms *cmd, const char *url)
{
    const char *why = sk_url_problem(cmd->pool, url);
    return why ? apr_pstrcat(cmd->pool, cmd->directive->directive, ": ", why, NULL) : NULL;
}

static const char *sk_set_env_url(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    const char *err = sk_check_url(cmd, arg);
    if (err)
        return err;
    size_t n = strlen(arg);
    if (arg[n - 1] == '/')
        return "ScalekitEnvironmentURL: write it without a trailing slash, "
               "exactly as the token issuer (e.g. https://acme.scalekit.dev)";
    c->env_url = arg;
    return NULL;
}

static const char *sk_set_redirect_uri(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    const char *err = arg[0] == '/' ? (sk_redirect_uri_path_ok(arg) ? NULL
        : "ScalekitRedirectURI: a path must be plain: no query, fragment, %-escapes or '//'")
        : sk_check_url(cmd, arg);
    if (err)
        return err;
    if (strlen(arg) > 256)
        return "ScalekitRedirectURI: Scalekit allows at most 256 characters";
    c->redirect_uri = arg;
    return NULL;
}

static const char *sk_set_client_id(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    if (!*arg || strpbrk(arg, " \t\r\n"))
        return "ScalekitClientID: expects the client id (e.g. skc_123...)";
    c->client_id = arg;
    return NULL;
}

/* Read a secret from "file:/path" (first line), or take it as written;
 * directive names it in messages. */
static const char *sk_read_secret(apr_pool_t *p, const char *directive, const char *arg,
                                  const char **out)
{
    if (strncmp(arg, "file:", 5)) {
        *out = arg;
        return NULL;
    }
    char *buf = NULL;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t len;
    apr_status_t rv = apr_file_open(&f, arg + 5, APR_READ, 0, p);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS && fi.size > 4096)
        rv = APR_EINVAL;
    if (rv == APR_SUCCESS) {
        len = (apr_size_t)fi.size;
        buf = apr_pcalloc(p, len + 1);
        rv = apr_file_read_full(f, buf, len, &len);
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "%s: cannot read '%s' (%pm)", directive, arg + 5, &rv);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!*buf)
        return apr_psprintf(p, "%s: '%s' is empty", directive, arg + 5);
    *out = buf;
    return NULL;
}

static const char *sk_set_client_secret(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    const char *err = sk_read_secret(cmd->pool, "ScalekitClientSecret", arg, &c->client_secret);
    if (err)
        return err;
    return NULL;
}

static const char *sk_set_scope(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    if (!ap_strstr_c(apr_pstrcat(cmd->temp_pool, " ", arg, " ", NULL), " openid "))
        return "ScalekitScopes: the scopes must include openid";
    c->scope = arg;
    return NULL;
}

static const char *sk_set_ca_file(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    apr_finfo_t fi;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "ScalekitCAFile: '%s' is not a readable file", arg);
    c->ca_file = path;
    return NULL;
}

static const char *sk_set_post_logout(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    if (!sk_local_path_ok(arg)) {
        const char *err = sk_check_url(cmd, arg);
        if (err)
            return err;
    }
    c->post_logout_uri = arg;
    return NULL;
}

static const char *sk_set_audience(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    if (!c->audiences_set)
        c->audiences = apr_array_make(cmd->pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(c->audiences, const char *) = arg;
    return NULL;
}

static const char *sk_set_redirect_origin(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    apr_uri_t u;
    if (apr_uri_parse(cmd->pool, arg, &u) != APR_SUCCESS || !u.scheme || !u.hostname
        || (u.path && *u.path) || u.query || u.user
        || (strcasecmp(u.scheme, "https") && strcasecmp(u.scheme, "http")))
        return "ScalekitAllowedRedirectOrigin: expects scheme://host[:port], no path";
    if (!c->redirect_origins_set)
        c->redirect_origins = apr_array_make(cmd->pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(c->redirect_origins, const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *sk_set_claim(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    c->remote_user_claim = arg;
    return NULL;
}

static int sk_cookie_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!apr_isalnum(*s) && !strchr("-_.", *s))
            return 0;
    return 1;
}

static const char *const sk_default_cookie_names[6] = {
    "sk-access-token", "sk-id-token", "sk-refresh-token", "sk-state-", "sk-session",
    "sk-profile"
};

/* The six names ScalekitCookieNames sets together: access ID refresh
 * state-prefix session profile. */
static void sk_cookie_names_use(sk_server_conf *c, const char *const names[6])
{
    c->cookie_access = names[0];
    c->cookie_id = names[1];
    c->cookie_refresh = names[2];
    c->cookie_state = names[3];
    c->cookie_session = names[4];
    c->cookie_profile = names[5];
}

static void sk_cookie_names_copy(sk_server_conf *c, const sk_server_conf *from)
{
    const char *const names[6] = { from->cookie_access, from->cookie_id, from->cookie_refresh,
                                    from->cookie_state, from->cookie_session,
                                    from->cookie_profile };
    sk_cookie_names_use(c, names);
}

/* The profile cookie's name when ScalekitCookieNames does not give one: the
 * default, with the __Host- or __Secure- prefix of the access token's name
 * (the profile goes wherever that cookie goes, and needs what it needs). */
static const char *sk_profile_name_for(apr_pool_t *p, const char *access)
{
    static const char *const prefixes[] = { "__Host-", "__Secure-" };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (!strncasecmp(access, prefixes[i], strlen(prefixes[i])))
            return apr_pstrcat(p, apr_pstrmemdup(p, access, strlen(prefixes[i])),
                               sk_default_cookie_names[5], NULL);
    return sk_default_cookie_names[5];
}

static const char *sk_set_cookie_names(cmd_parms *cmd, sk_server_conf *c, const char *args)
{
    const char *names[6] = { NULL, NULL, NULL, NULL, sk_default_cookie_names[4], NULL };
    int n = 0;
    while (*args && n < 6)
        names[n++] = ap_getword_conf(cmd->pool, &args);
    if (n < 4 || *args)
        return "ScalekitCookieNames: expects four to six names: access ID refresh "
               "state-prefix [session [profile]]";
    if (!names[5])
        names[5] = sk_profile_name_for(cmd->pool, names[0]);
    for (int i = 0; i < 6; i++)
        if (!sk_cookie_name_ok(names[i]))
            return apr_psprintf(cmd->pool, "ScalekitCookieNames: '%s' is not a valid "
                                "cookie name (letters, digits, - _ .)", names[i]);
    sk_cookie_names_use(c, names);
    return NULL;
}

static const char *sk_set_cookie_domain(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    if (strpbrk(arg, ";, \t\"="))
        return "ScalekitCookieDomain: not a domain name";
    c->cookie_domain = arg;
    return NULL;
}

static const char *sk_set_samesite(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    if (!strcasecmp(arg, "Lax"))
        c->cookie_samesite = "Lax";
    else if (!strcasecmp(arg, "Strict"))
        return "ScalekitCookieSameSite: Strict would drop the cookies on the return "
               "from Scalekit; use Lax or None";
    else if (!strcasecmp(arg, "None"))
        c->cookie_samesite = "None";
    else
        return "ScalekitCookieSameSite: expects Lax or None";
    return NULL;
}

static const char *sk_set_secure(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    if (!strcasecmp(arg, "auto"))
        c->cookie_secure = -1;
    else if (!strcasecmp(arg, "on"))
        c->cookie_secure = 1;
    else if (!strcasecmp(arg, "off"))
        c->cookie_secure = 0;
    else
        return "ScalekitCookieSecure: expects auto, on or off";
    return NULL;
}

static const char *sk_set_store(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    c->store_redis = NULL;
    if (!strcasecmp(arg, "cookie")) {
        c->store_provider = NULL;
        c->store_args = NULL;
    } else if (sk_is_redis_url(arg)) {
        sk_redis_url *u = apr_palloc(cmd->pool, sizeof(*u));
        const char *why = sk_redis_url_parse(cmd->pool, arg, u);
        if (why)        /* the argument is not echoed: it may hold a password */
            return apr_pstrcat(cmd->pool, "ScalekitSessionStore redis://...: ", why, NULL);
        c->store_redis = u;
        c->store_provider = u->display;
        c->store_args = NULL;
    } else {
        const char *colon = strchr(arg, ':');
        c->store_provider = colon ? apr_pstrmemdup(cmd->pool, arg, (apr_size_t)(colon - arg))
                                  : arg;
        c->store_args = colon ? colon + 1 : NULL;
        if (!*c->store_provider)
            return "ScalekitSessionStore: expects cookie, or a shared object cache such as "
                   "shmcb, redis:host:port or memcache:host:port";
    }
    return NULL;
}

/* The Redis password: env:NAME, file:/path (first line) or the password. */
static const char *sk_set_store_password(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    if (!strncmp(arg, "env:", 4)) {
        c->store_password = getenv(arg + 4);
        if (!arg[4] || !c->store_password || !*c->store_password)
            return apr_psprintf(cmd->pool, "ScalekitSessionStorePassword: the environment "
                                "variable '%s' is not set", arg + 4);
    } else {
        const char *err = sk_read_secret(cmd->pool, "ScalekitSessionStorePassword", arg,
                                         &c->store_password);
        if (err)
            return err;
        if (!*c->store_password)
            return "ScalekitSessionStorePassword: expects env:NAME, file:/path or the password";
    }
    return NULL;
}

static const char *sk_set_store_failure(cmd_parms *cmd, sk_server_conf *c, const char *arg)
{
    (void)cmd;
    if (!strcmp(arg, "503"))
        c->store_failure_login = 0;
    else if (!strcasecmp(arg, "login"))
        c->store_failure_login = 1;
    else
        return "ScalekitSessionStoreFailure: expects 503 or login";
    return NULL;
}

static const char *sk_set_algs(cmd_parms *cmd, sk_server_conf *c, const char *args)
{
    unsigned algs = 0;
    while (*args) {
        const char *a = ap_getword_conf(cmd->temp_pool, &args);
        unsigned bit = sk_alg_bit(a);
        if (!bit)
            return apr_psprintf(cmd->pool, "ScalekitAllowedAlgorithms: '%s' is not one "
                                "of RS256, PS256, ES256", a);
        algs |= bit;
    }
    if (!algs)
        return "ScalekitAllowedAlgorithms: name at least one algorithm";
    c->algs = algs;
    return NULL;
}

/* Integer settings (form INT): bounds given in the directive table. */
typedef struct {
    int min, max;
} sk_range;
#define SK_RANGE(min, max) ((sk_range){ (min), (max) })

static const char *sk_set_int(cmd_parms *cmd, const char *arg, sk_range range, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || *end || end == arg || v < range.min || v > range.max)
        return apr_psprintf(cmd->pool, "%s: expects a whole number from %d to %d",
                            cmd->cmd->name, range.min, range.max);
    *out = (int)v;
    return NULL;
}

/* Settings of form FLAG. */
static const char *sk_on_off(int *field, int on)
{
    *field = on;
    return NULL;
}

static const char *sk_set_unauth(cmd_parms *cmd, sk_dir_conf *d, const char *arg)
{
    (void)cmd;
    if (!strcasecmp(arg, "auto"))
        d->unauth = SK_UNAUTH_AUTO;
    else if (!strcasecmp(arg, "login"))
        d->unauth = SK_UNAUTH_LOGIN;
    else if (!strcasecmp(arg, "401"))
        d->unauth = SK_UNAUTH_401;
    else if (!strcasecmp(arg, "pass"))
        d->unauth = SK_UNAUTH_PASS;
    else
        return "ScalekitUnauthAction: expects auto, login, 401 or pass";
    return NULL;
}

/* The header name of a claim after the prefix: each character other than a
 * letter or digit a '-', and each part starting upper case (given_name:
 * Given-Name), like the fixed set's. Two claims share a header name (in any
 * case) exactly when they share a variable. */
static const char *sk_claim_header_suffix(apr_pool_t *p, const char *claim)
{
    char *h = apr_pstrdup(p, claim);
    for (char *c = h; *c; c++)
        if (!apr_isalnum(*c))
            *c = '-';
        else if (c == h || c[-1] == '-')
            *c = apr_toupper(*c);
    return h;
}

/* The claims' full header names for prefix (NULL: none yet), when
 * ScalekitClaimHeaders and ScalekitEnvVars share a section; a prefix from
 * another section is joined per request, as the fixed set's are. */
static void sk_custom_headers_make(apr_pool_t *p, sk_custom_claims *cc, const char *prefix)
{
    cc->prefix = prefix;
    for (int i = 0; i < cc->n; i++)
        cc->claim[i].header = prefix ? apr_pstrcat(p, prefix, cc->claim[i].suffix, NULL) : NULL;
}

/* A claim name ScalekitEnvVars takes: a letter, then letters, digits, '_',
 * '-' or '.', SK_CLAIM_NAME_MAX in all. Anything else (a space, a quote, a
 * colon, a NUL) could not be a variable or header name in a way an
 * application can guess. */
#define SK_CLAIM_NAME_MAX 64
static int sk_claim_name_ok(const char *w)
{
    if (!apr_isalpha(*w) || strlen(w) > SK_CLAIM_NAME_MAX)
        return 0;
    for (; *w; w++)
        if (!apr_isalnum(*w) && *w != '_' && *w != '-' && *w != '.')
            return 0;
    return 1;
}

/* A custom claim's variable: SCALEKIT_ and its name upper case, every
 * character other than A-Z and 0-9 a '_'. */
static const char *sk_claim_env_name(apr_pool_t *p, const char *claim)
{
    char *e = apr_pstrcat(p, "SCALEKIT_", claim, NULL);
    for (char *c = e + 9; *c; c++)
        *c = apr_isalnum(*c) ? apr_toupper(*c) : '_';
    return e;
}

/* NULL, or why claim i of cc shares its variable (and so its header: both
 * names map the same characters) with a fixed one or an earlier claim. */
static const char *sk_claim_clash(apr_pool_t *p, const sk_custom_claims *cc, int i)
{
    const char *env = cc->claim[i].env;
    /* The variable that names a listed machine client (ScalekitMachineClients):
     * from a claim, every token's client_id would pass for one. */
    if (!strcmp(env, "SCALEKIT_CLIENT_ID"))
        return apr_psprintf(p, "ScalekitEnvVars: claim '%s' would be SCALEKIT_CLIENT_ID, "
                            "which names only a client listed in ScalekitMachineClients",
                            cc->claim[i].claim);
    for (int k = 0; k < SK_PUBLISHED_COUNT; k++)
        if (!strcmp(env, sk_published[k].env))
            return apr_psprintf(p, "ScalekitEnvVars: claim '%s' would be %s, the variable of "
                                "%s", cc->claim[i].claim, env, sk_published[k].word);
    for (int k = 0; k < i; k++)
        if (!strcmp(env, cc->claim[k].env))
            return apr_psprintf(p, "ScalekitEnvVars: claims '%s' and '%s' would both be %s",
                                cc->claim[k].claim, cc->claim[i].claim, env);
    return NULL;
}

/* The custom claims of ScalekitEnvVars (names, n of them), checked and named. */
static const char *sk_custom_claims_make(cmd_parms *cmd, sk_dir_conf *d,
                                         const apr_array_header_t *names)
{
    sk_custom_claims *cc = apr_pcalloc(cmd->pool, sizeof(*cc)
                                       + (size_t)names->nelts * sizeof(sk_custom_claim));
    cc->n = names->nelts;
    for (int i = 0; i < cc->n; i++) {
        const char *w = APR_ARRAY_IDX(names, i, const char *);
        if (!sk_claim_name_ok(w))
            return apr_psprintf(cmd->pool, "ScalekitEnvVars: '%s' is neither a variable (all, "
                                "none, sub email name organization_id session_id roles "
                                "permissions scope) nor a claim name it accepts (a letter, "
                                "then letters, digits, '_', '-' or '.'; at most %d)",
                                w, SK_CLAIM_NAME_MAX);
        cc->claim[i].claim = apr_pstrdup(cmd->pool, w);
        cc->claim[i].env = sk_claim_env_name(cmd->pool, w);
        cc->claim[i].suffix = sk_claim_header_suffix(cmd->pool, w);
        const char *clash = sk_claim_clash(cmd->pool, cc, i);
        if (clash)
            return clash;
    }
    sk_custom_headers_make(cmd->pool, cc, d->header_prefix_set ? d->header_prefix : NULL);
    d->custom = cc->n ? cc : NULL;
    return NULL;
}

/* ScalekitEnvVars all|none|name...: each name is a SCALEKIT_* variable in
 * lower case without the prefix (sub, email, organization_id, ...), or any
 * other claim; "all" may be followed by claims only. */
static const char *sk_set_env_vars(cmd_parms *cmd, sk_dir_conf *d, const char *args)
{
    unsigned mask = 0;
    int words = 0, all = 0, none = 0, fixed = 0;
    apr_array_header_t *claims = apr_array_make(cmd->temp_pool, 4, sizeof(const char *));
    /* Up to the end, not the first empty word: a quoted "" is a bad claim name. */
    for (const char *w; *args; words++) {
        w = ap_getword_conf(cmd->temp_pool, &args);
        if (!strcasecmp(w, "all") || !strcasecmp(w, "none")) {
            mask = !strcasecmp(w, "all") ? SK_ENV_ALL : 0;
            *(mask ? &all : &none) += 1;
            continue;
        }
        unsigned bit = 0;
        for (unsigned i = 0; i < SK_PUBLISHED_COUNT && !bit; i++)
            if (!strcasecmp(w, sk_published[i].word))
                bit = 1u << i;
        if (bit) {
            mask |= bit;
            fixed = 1;
        } else {
            APR_ARRAY_PUSH(claims, const char *) = w;
        }
    }
    if (!words || (none && words > 1) || all > 1 || (all && fixed))
        return "ScalekitEnvVars: expects all, none, or a list of variables (after all: "
               "claims only)";
    const char *bad = sk_custom_claims_make(cmd, d, claims);
    if (bad)
        return bad;
    d->env_vars = mask;
    return NULL;
}

/* ScalekitMachineClients id...|none: API clients (client_credentials) whose
 * bearer tokens without aud this location accepts. Repeated lines add. */
static const char *sk_set_machine_client(cmd_parms *cmd, sk_dir_conf *d, const char *arg)
{
    if (!*arg || strpbrk(arg, " \t\r\n\"'"))
        return "ScalekitMachineClients: expects client ids (e.g. m2morg_123...) or none";
    if (!d->machine_clients)
        d->machine_clients = apr_array_make(cmd->pool, 2, sizeof(const char *));
    if (!strcasecmp(arg, "none"))
        apr_array_clear(d->machine_clients);      /* a sub-location turns it off */
    else
        APR_ARRAY_PUSH(d->machine_clients, const char *) = arg;
    return NULL;
}

/* Headers a request cannot lose: the module reads them (the session, what
 * kind of request it is) and a proxied request needs them. */
static const char *const sk_needed_headers[] = {
    "Cookie", "Authorization", "Accept", "X-Requested-With", "Sec-Fetch-Mode",
    "Sec-Fetch-Dest", "Host", "Content-Type", "Content-Length", "Transfer-Encoding", NULL
};

/* Every client header starting with the prefix is removed, so a prefix that
 * covers a needed header (all of them, when empty) would stop every sign-in.
 * httpd refuses an empty word for TAKE1 itself; checked again all the same. */
static const char *sk_claim_prefix_unusable(apr_pool_t *p, const char *prefix)
{
    if (!apr_isalpha(*prefix))
        return "ScalekitClaimHeaders: the prefix must start with a letter (e.g. X-Scalekit-)";
    for (int i = 0; sk_needed_headers[i]; i++)
        if (sk_header_has_prefix(sk_needed_headers[i], prefix))
            return apr_psprintf(p, "ScalekitClaimHeaders: prefix '%s' would remove the "
                                "client's %s header (client headers starting with the "
                                "prefix are removed); use one such as X-Scalekit-",
                                prefix, sk_needed_headers[i]);
    return NULL;
}

static const char *sk_set_claim_headers(cmd_parms *cmd, sk_dir_conf *d, const char *arg)
{
    if (strcasecmp(arg, "off")) {
        for (const char *c = arg; *c; c++)
            if (!apr_isalnum(*c) && *c != '-')
                return "ScalekitClaimHeaders: expects Off or a header prefix such as "
                       "X-Scalekit- (letters, digits and -)";
        const char *bad = sk_claim_prefix_unusable(cmd->pool, arg);
        if (bad)
            return bad;
        d->header_prefix = arg;
        sk_claim_headers_used = 1;
    } else {
        d->header_prefix = NULL;
    }
    if (d->env_vars_set && d->custom)       /* ScalekitEnvVars came first in this section */
        sk_custom_headers_make(cmd->pool, d->custom, d->header_prefix);
    return NULL;
}

static const char *sk_set_login_if(cmd_parms *cmd, sk_dir_conf *d, const char *arg)
{
    const char *err = NULL;
    d->login_if = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_DONT_VARY, &err, NULL);
    if (err)
        return apr_pstrcat(cmd->pool, "ScalekitLoginIf: cannot parse the expression: ",
                           err, NULL);
    return NULL;
}

/* ScalekitLoginParams key=value...: checked and kept whole here, so a
 * sign-in only copies pointers; "none" clears what an outer section set. */
static const char *sk_set_login_params(cmd_parms *cmd, sk_dir_conf *d, const char *args)
{
    sk_login_params *lp = apr_pcalloc(cmd->pool, sizeof(*lp));
    int words = 0, none = 0;
    for (const char *w; *(w = ap_getword_conf(cmd->pool, &args)); words++) {
        if (!strcasecmp(w, "none")) {
            none = 1;
            continue;
        }
        const char *eq = strchr(w, '=');
        const char *key = eq ? apr_pstrmemdup(cmd->pool, w, (apr_size_t)(eq - w)) : w;
        int i = sk_login_param_index(key);
        if (i < 0)
            return apr_psprintf(cmd->pool, "ScalekitLoginParams: unknown parameter '%s' "
                                "(organization_id, connection_id, domain_hint, login_hint, "
                                "provider, prompt; written key=value)", key);
        const char *why = eq ? sk_login_param_problem(i, eq + 1) : "no value (key=value)";
        if (why)
            return apr_psprintf(cmd->pool, "ScalekitLoginParams: %s: %s", key, why);
        if (lp->v[i])
            return apr_psprintf(cmd->pool, "ScalekitLoginParams: %s is given twice", key);
        lp->v[i] = eq + 1;
    }
    if (!words || (none && words > 1))
        return "ScalekitLoginParams: expects key=value pairs, or none";
    d->login_params = none ? NULL : lp;
    return NULL;
}

static const char *sk_set_unauthz(cmd_parms *cmd, sk_dir_conf *d, const char *arg)
{
    (void)cmd;
    if (!strcmp(arg, "403"))
        d->unauthz_login = 0;
    else if (!strcasecmp(arg, "login"))
        d->unauthz_login = 1;
    else
        return "ScalekitUnauthzAction: expects 403 or login";
    return NULL;
}

/* ------------------------------------------------------ the directive table
 * Every directive once, in the order apache2 -L lists them:
 *   X(name, scope, form, field, parser, default, merge, help)
 * scope   SERVER (sk_server_conf, RSRC_CONF) or DIR (sk_dir_conf, OR_AUTHCFG)
 * form    how httpd hands the parser its arguments: TAKE1 (one word), RAW_ARGS
 *         (the rest of the line), ITERATE (each word in turn), FLAG (On/Off, to
 *         the parser sk_on_off) or INT (one whole number within the parser's
 *         SK_RANGE)
 * field   the setting; its field_set bit is set when the parser accepts it
 * default the field's value in a new configuration
 * merge   how a virtual host or section inherits it: FIELD (its own when set,
 *         else the outer one's), or a rule for fields set together: NAMES (the
 *         six cookie names), STORE (the store and its arguments), CLAIMS (the
 *         variables and ScalekitEnvVars' other claims).
 * Adding a directive: a row here, the field and its _set bit in sk_module.h,
 * its section in docs/directives.md (tests/integration/test_docs.py checks). */
#define SK_DIRECTIVES(X) \
    X(ScalekitEnvironmentURL, SERVER, TAKE1, env_url, sk_set_env_url, NULL, FIELD, \
      "Scalekit environment URL, the token issuer (default $SCALEKIT_ENVIRONMENT_URL)") \
    X(ScalekitClientID, SERVER, TAKE1, client_id, sk_set_client_id, NULL, FIELD, \
      "OAuth client id (default $SCALEKIT_CLIENT_ID)") \
    X(ScalekitClientSecret, SERVER, TAKE1, client_secret, sk_set_client_secret, NULL, FIELD, \
      "client secret, or file:/path to read it from (default $SCALEKIT_CLIENT_SECRET)") \
    X(ScalekitRedirectURI, SERVER, TAKE1, redirect_uri, sk_set_redirect_uri, NULL, FIELD, \
      "callback URL registered at Scalekit, or its path to make it from each " \
      "request's host (default $SCALEKIT_REDIRECT_URI)") \
    X(ScalekitScopes, SERVER, RAW_ARGS, scope, sk_set_scope, SK_DEFAULT_SCOPE, FIELD, \
      "scopes to request (default: openid profile email offline_access)") \
    X(ScalekitCAFile, SERVER, TAKE1, ca_file, sk_set_ca_file, NULL, FIELD, \
      "PEM file of CAs trusted for the identity provider (default: system store)") \
    X(ScalekitPostLogoutRedirectURI, SERVER, TAKE1, post_logout_uri, sk_set_post_logout, \
      NULL, FIELD, \
      "where Scalekit sends the browser after sign-out (default: the site root)") \
    X(ScalekitAudience, SERVER, ITERATE, audiences, sk_set_audience, \
      apr_array_make(p, 2, sizeof(const char *)), FIELD, \
      "access-token audiences accepted besides the client id") \
    X(ScalekitAllowedRedirectOrigin, SERVER, ITERATE, redirect_origins, sk_set_redirect_origin, \
      apr_array_make(p, 2, sizeof(const char *)), FIELD, \
      "origins (scheme://host[:port]) return_to may name besides local paths") \
    X(ScalekitRemoteUserClaim, SERVER, TAKE1, remote_user_claim, sk_set_claim, "sub", FIELD, \
      "claim that becomes REMOTE_USER (default: sub)") \
    X(ScalekitCookieNames, SERVER, RAW_ARGS, cookie_names, sk_set_cookie_names, \
      sk_default_cookie_names, NAMES, \
      "cookie names: access ID refresh state-prefix [session [profile]]") \
    X(ScalekitCookieDomain, SERVER, TAKE1, cookie_domain, sk_set_cookie_domain, NULL, FIELD, \
      "Domain attribute of the session cookies (default: none, host only)") \
    X(ScalekitCookieSameSite, SERVER, TAKE1, cookie_samesite, sk_set_samesite, "Lax", FIELD, \
      "SameSite attribute of the session cookies: Lax (default) or None") \
    X(ScalekitCookieSecure, SERVER, TAKE1, cookie_secure, sk_set_secure, -1, FIELD, \
      "Secure attribute: auto (on https, default), on or off") \
    X(ScalekitAllowedAlgorithms, SERVER, RAW_ARGS, algs, sk_set_algs, SK_ALG_RS256, FIELD, \
      "token signature algorithms accepted (default: RS256)") \
    X(ScalekitLeeway, SERVER, INT, leeway, SK_RANGE(0, 600), 60, FIELD, \
      "clock leeway in seconds for exp, nbf and iat (default 60)") \
    X(ScalekitTimeout, SERVER, INT, timeout, SK_RANGE(1, 60), 5, FIELD, \
      "timeout in seconds for calls to the identity provider (default 5)") \
    X(ScalekitJWKSCacheTTL, SERVER, INT, jwks_ttl, SK_RANGE(60, 86400 * 7), 3600, FIELD, \
      "seconds the JWKS is kept before it is fetched again (default 3600)") \
    X(ScalekitJWKSRefreshInterval, SERVER, INT, jwks_min_refetch, SK_RANGE(1, 3600), 10, FIELD, \
      "least seconds between JWKS fetches for an unknown kid (default 10)") \
    X(ScalekitStateTimeout, SERVER, INT, state_ttl, SK_RANGE(30, 3600), 600, FIELD, \
      "seconds a started sign-in stays valid (default 600)") \
    X(ScalekitStateMaxPending, SERVER, INT, state_max, SK_RANGE(1, 20), 5, FIELD, \
      "most sign-ins pending at once per browser (default 5)") \
    X(ScalekitCacheEntries, SERVER, INT, cache_entries, SK_RANGE(0, 10000000), 16384, FIELD, \
      "validated tokens cached per process (default 16384; 0 disables)") \
    X(ScalekitSessionMaxAge, SERVER, INT, session_max_age, SK_RANGE(60, 366 * 86400), \
      30 * 86400, FIELD, \
      "seconds a stored session is kept at most (default 30 days)") \
    X(ScalekitSessionStore, SERVER, TAKE1, store_provider, sk_set_store, NULL, STORE, \
      "where tokens live: cookie (default), redis://[user@]host[:port][/db], or " \
      "a shared object cache, e.g. shmcb, redis:host:port, memcache:host:port") \
    X(ScalekitSessionStorePassword, SERVER, TAKE1, store_password, sk_set_store_password, \
      NULL, FIELD, \
      "password of a redis:// session store: env:NAME, file:/path or the password") \
    X(ScalekitSessionStoreFailure, SERVER, TAKE1, store_failure_login, sk_set_store_failure, \
      0, FIELD, \
      "when the session store does not answer: 503 (default) or login") \
    X(ScalekitRevokeOnLogout, SERVER, FLAG, revoke_on_logout, sk_on_off, 0, FIELD, \
      "revoke the Scalekit session at sign-out (default Off)") \
    X(ScalekitUnauthAction, DIR, TAKE1, unauth, sk_set_unauth, SK_UNAUTH_AUTO, FIELD, \
      "without a session: auto (default), login, 401 or pass") \
    X(ScalekitBearer, DIR, FLAG, bearer, sk_on_off, 0, FIELD, \
      "accept an access token in Authorization: Bearer (default Off)") \
    X(ScalekitClaimHeaders, DIR, TAKE1, header_prefix, sk_set_claim_headers, NULL, FIELD, \
      "pass claims to the application as request headers with this prefix " \
      "(default Off)") \
    X(ScalekitSilentLogin, DIR, FLAG, silent, sk_on_off, 0, FIELD, \
      "try a silent sign-in (prompt=none) first, for a Scalekit session shared " \
      "by several applications (default Off)") \
    X(ScalekitStripCookies, DIR, FLAG, strip_cookies, sk_on_off, 1, FIELD, \
      "remove the module's cookies (tokens, session id, sign-in state) from the " \
      "request once read, so the application never sees them (default On)") \
    X(ScalekitEnvVars, DIR, RAW_ARGS, env_vars, sk_set_env_vars, SK_ENV_ALL, CLAIMS, \
      "which SCALEKIT_* variables to set: all (default), none, or some of sub " \
      "email name organization_id session_id roles permissions scope; and any " \
      "other claim by name (after all, too)") \
    X(ScalekitPassAccessToken, DIR, FLAG, pass_token, sk_on_off, 0, FIELD, \
      "send the session's access token to the application as Authorization: " \
      "Bearer, replacing the client's (default Off)") \
    X(ScalekitMachineClients, DIR, ITERATE, machine_clients, sk_set_machine_client, NULL, \
      FIELD, \
      "API client ids whose bearer tokens without aud are accepted here " \
      "(ScalekitBearer On; default none)") \
    X(ScalekitLoginIf, DIR, TAKE1, login_if, sk_set_login_if, NULL, FIELD, \
      "ap_expr: true when a request without a session should be sent to sign in " \
      "(default: browser navigations)") \
    X(ScalekitLoginParams, DIR, RAW_ARGS, login_params, sk_set_login_params, NULL, FIELD, \
      "sign-in parameters sent to Scalekit, key=value: organization_id " \
      "connection_id domain_hint login_hint provider prompt (or none)") \
    X(ScalekitUnauthzAction, DIR, TAKE1, unauthz_login, sk_set_unauthz, 0, FIELD, \
      "a signed-in browser refused by Require scalekit-organization: 403 (default) " \
      "or login (sign in to that organization, once)")

/* Per scope: the struct, how a setter finds it, httpd's context. */
#define SK_CONF_SERVER           sk_server_conf
#define SK_CONF_DIR              sk_dir_conf
#define SK_CONF_OF_SERVER(cmd, dv) ((void)(dv), sk_cmd_conf(cmd))
#define SK_CONF_OF_DIR(cmd, dv)    ((void)(cmd), (sk_dir_conf *)(dv))
#define SK_CONTEXT_SERVER        RSRC_CONF
#define SK_CONTEXT_DIR           OR_AUTHCFG

/* Per form: the argument httpd passes, the parser's call, the table entry. */
#define SK_ARG_TAKE1             const char *arg
#define SK_ARG_RAW_ARGS          const char *arg
#define SK_ARG_ITERATE           const char *arg
#define SK_ARG_INT               const char *arg
#define SK_ARG_FLAG              int arg
#define SK_CALL_TAKE1(parse, c, field)    parse(cmd, c, arg)
#define SK_CALL_RAW_ARGS(parse, c, field) parse(cmd, c, arg)
#define SK_CALL_ITERATE(parse, c, field)  parse(cmd, c, arg)
#define SK_CALL_INT(range, c, field)      sk_set_int(cmd, arg, range, &c->field)
#define SK_CALL_FLAG(parse, c, field)     parse(&c->field, arg)
#define SK_INIT_TAKE1            AP_INIT_TAKE1
#define SK_INIT_RAW_ARGS         AP_INIT_RAW_ARGS
#define SK_INIT_ITERATE          AP_INIT_ITERATE
#define SK_INIT_INT              AP_INIT_TAKE1
#define SK_INIT_FLAG             AP_INIT_FLAG

/* One setter per directive: the parser, then the setting's _set bit. */
#define SK_X_SETTER(name, scope, form, field, parse, dflt, merge, help)          \
    static const char *sk_cmd_##field(cmd_parms *cmd, void *dv, SK_ARG_##form)    \
    {                                                                             \
        SK_CONF_##scope *c = SK_CONF_OF_##scope(cmd, dv);                         \
        const char *err = SK_CALL_##form(parse, c, field);                        \
        if (!err)                                                                 \
            c->field##_set = 1;                                                   \
        return err;                                                               \
    }
SK_DIRECTIVES(SK_X_SETTER)

#define SK_X_COMMAND(name, scope, form, field, parse, dflt, merge, help) \
    SK_INIT_##form(#name, sk_cmd_##field, NULL, SK_CONTEXT_##scope, help),

static const command_rec sk_cmds[] = {
    SK_DIRECTIVES(SK_X_COMMAND)
    { NULL }
};

/* ----------------------------------------------------- create and merge
 * Generated from the table, each for the rows of its own scope: SK_IF_A_B(x)
 * is x when the function's scope A is the row's scope B. */
#define SK_IF_SERVER_SERVER(x)   x
#define SK_IF_SERVER_DIR(x)
#define SK_IF_DIR_SERVER(x)
#define SK_IF_DIR_DIR(x)         x

/* The rules of the merge column: c is made from base (the outer scope) and
 * add (the inner one); default puts the table's value in a new c. */
#define SK_MERGE_FIELD(f) c->f = add->f##_set ? add->f : base->f; \
                          c->f##_set = add->f##_set | base->f##_set
#define SK_DEFAULT_FIELD(f, v)   c->f = (v)
#define SK_MERGE_NAMES(f) sk_cookie_names_copy(c, add->f##_set ? add : base); \
                          c->f##_set = add->f##_set | base->f##_set
#define SK_DEFAULT_NAMES(f, v)   sk_cookie_names_use(c, v)
#define SK_MERGE_STORE(f) SK_MERGE_FIELD(f);                                          \
    c->store_args = add->f##_set ? add->store_args : base->store_args;                 \
    c->store_redis = add->f##_set ? add->store_redis : base->store_redis
#define SK_DEFAULT_STORE(f, v)   SK_DEFAULT_FIELD(f, v)
#define SK_MERGE_CLAIMS(f) SK_MERGE_FIELD(f); c->custom = add->f##_set ? add->custom : base->custom
#define SK_DEFAULT_CLAIMS(f, v)  SK_DEFAULT_FIELD(f, v)

#define SK_X_DEFAULT_SERVER(name, scope, form, field, parse, dflt, merge, help) \
    SK_IF_SERVER_##scope(SK_DEFAULT_##merge(field, dflt);)
#define SK_X_DEFAULT_DIR(name, scope, form, field, parse, dflt, merge, help) \
    SK_IF_DIR_##scope(SK_DEFAULT_##merge(field, dflt);)
#define SK_X_MERGE_SERVER(name, scope, form, field, parse, dflt, merge, help) \
    SK_IF_SERVER_##scope(SK_MERGE_##merge(field);)
#define SK_X_MERGE_DIR(name, scope, form, field, parse, dflt, merge, help) \
    SK_IF_DIR_##scope(SK_MERGE_##merge(field);)

static void *sk_create_server_conf(apr_pool_t *p, server_rec *s)
{
    sk_server_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)s;
    SK_DIRECTIVES(SK_X_DEFAULT_SERVER)
    return c;
}

static void *sk_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    sk_server_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
    SK_DIRECTIVES(SK_X_MERGE_SERVER)
    c->where = add->where ? add->where : base->where;
    return c;
}

static void *sk_create_dir_conf(apr_pool_t *p, char *dir)
{
    sk_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    (void)dir;
    SK_DIRECTIVES(SK_X_DEFAULT_DIR)
    return c;
}

#define SK_X_ANY_SET_DIR(name, scope, form, field, parse, dflt, merge, help) \
    SK_IF_DIR_##scope(|| c->field##_set)

/* Whether a section sets any of the module's directives. */
static int sk_dir_has_settings(const sk_dir_conf *c)
{
    return 0 SK_DIRECTIVES(SK_X_ANY_SET_DIR);
}

/* httpd merges every section a request matches, protected or not. A section
 * without our directives changes nothing: the outer config as it is; an
 * outer one without any holds the defaults, which the inner one holds where
 * it sets nothing. No allocation for either (merged configs are never
 * written to). */
static void *sk_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    sk_dir_conf *base = basev, *add = addv;
    if (!sk_dir_has_settings(add))
        return base;
    if (!sk_dir_has_settings(base))
        return add;
    sk_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    SK_DIRECTIVES(SK_X_MERGE_DIR)
    return c;
}

/* --------------------------------------------------------- start-up checks */

static const char *sk_env_default(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A server uses Scalekit when any of its settings or the environment names it. */
static int sk_server_wants_scalekit(const sk_server_conf *c)
{
    return c->env_url_set || c->client_id_set || c->client_secret_set
        || c->redirect_uri_set || sk_env_default("SCALEKIT_ENVIRONMENT_URL");
}

static const char *sk_where(apr_pool_t *p, server_rec *s, const sk_server_conf *c)
{
    if (c->where)
        return apr_pstrcat(p, "the Scalekit settings at ", c->where, NULL);
    return s->defn_name ? apr_psprintf(p, "the server defined at %s:%u", s->defn_name,
                                       s->defn_line_number)
                        : "the main server";
}

static int sk_has_prefix(const char *name, const char *prefix)
{
    return !strncasecmp(name, prefix, strlen(prefix));
}

/* __Host- and __Secure- cookie names: browsers drop such a cookie unless it is
 * Secure (and, for __Host-, has Path=/ and no Domain). Settings that would
 * make the browser drop the session are refused; auto becomes on, so the
 * cookies are Secure on plain http too (behind a TLS-terminating proxy). */
static const char *sk_cookie_prefix_problem(apr_pool_t *p, server_rec *s, sk_server_conf *c)
{
    const char *names[] = { c->cookie_access, c->cookie_id, c->cookie_refresh,
                            c->cookie_state, c->cookie_session, c->cookie_profile };
    const char *host = NULL, *secure = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!host && sk_has_prefix(names[i], "__Host-"))
            host = names[i];
        if (!secure && (sk_has_prefix(names[i], "__Host-") || sk_has_prefix(names[i], "__Secure-")))
            secure = names[i];
    }
    if (host && c->cookie_domain)
        return apr_psprintf(p, "mod_scalekit: ScalekitCookieNames: the cookie '%s' (a __Host- "
                            "name) must not carry a Domain: remove ScalekitCookieDomain (%s)",
                            host, sk_where(p, s, c));
    if (secure && c->cookie_secure == 0)
        return apr_psprintf(p, "mod_scalekit: ScalekitCookieNames: the cookie '%s' must be "
                            "Secure: ScalekitCookieSecure off would make browsers drop it (%s)",
                            secure, sk_where(p, s, c));
    if (secure)
        c->cookie_secure = 1;
    return NULL;
}

/* Fill unset required settings from the environment, then check them all. */
static const char *sk_finish_server(apr_pool_t *p, server_rec *s, sk_server_conf *c)
{
    static const struct { const char *directive, *env; size_t off; } req[] = {
        { "ScalekitEnvironmentURL", "SCALEKIT_ENVIRONMENT_URL",
          APR_OFFSETOF(sk_server_conf, env_url) },
        { "ScalekitClientID", "SCALEKIT_CLIENT_ID", APR_OFFSETOF(sk_server_conf, client_id) },
        { "ScalekitClientSecret", "SCALEKIT_CLIENT_SECRET",
          APR_OFFSETOF(sk_server_conf, client_secret) },
        { "ScalekitRedirectURI", "SCALEKIT_REDIRECT_URI",
          APR_OFFSETOF(sk_server_conf, redirect_uri) },
    };
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
        const char **field = (const char **)((char *)c + req[i].off);
        if (!*field)
            *field = sk_env_default(req[i].env);
        if (!*field)
            return apr_psprintf(p, "mod_scalekit: %s is not set (nor $%s), needed by %s",
                                req[i].directive, req[i].env, sk_where(p, s, c));
    }
    /* Values from the environment get the checks the directives give theirs. */
    const char *why = sk_url_problem(p, c->env_url);
    if (why || c->env_url[strlen(c->env_url) - 1] == '/')
        return apr_psprintf(p, "mod_scalekit: the environment URL (ScalekitEnvironmentURL or "
                            "$SCALEKIT_ENVIRONMENT_URL): %s", why ? why : "no trailing slash");
    apr_uri_t u;
    if (c->redirect_uri[0] == '/')
        why = sk_redirect_uri_path_ok(c->redirect_uri) ? NULL : "a path must be plain";
    else
        why = sk_url_problem(p, c->redirect_uri);
    if (why || apr_uri_parse(p, c->redirect_uri, &u) != APR_SUCCESS || !u.path
        || u.path[0] != '/')
        return apr_psprintf(p, "mod_scalekit: the redirect URI (ScalekitRedirectURI or "
                            "$SCALEKIT_REDIRECT_URI): %s", why ? why : "no path");
    return sk_cookie_prefix_problem(p, s, c);
}

/* Fetch the JWKS for the key store (called from request threads). */
static apr_status_t sk_fetch_jwks(void *ctx, char **body, size_t *len, char *err,
                                  size_t errlen)
{
    sk_runtime *rt = ctx;
    sk_http_resp resp;
    sk_count(SK_C_JWKS_FETCH);          /* server-wide, unlike the key store's own figures */
    apr_status_t rv = sk_http_request(&rt->http, rt->jwks_url, NULL, &resp);
    if (rv != APR_SUCCESS) {
        apr_snprintf(err, errlen, "GET %s: %s", rt->jwks_url, resp.err);
        sk_count(SK_C_JWKS_FETCH_FAIL);
        return rv;
    }
    if (resp.status != 200) {
        apr_snprintf(err, errlen, "GET %s: status %ld", rt->jwks_url, resp.status);
        sk_http_resp_free(&resp);
        sk_count(SK_C_JWKS_FETCH_FAIL);
        return APR_EGENERAL;
    }
    *body = resp.body;
    *len = resp.len;
    return APR_SUCCESS;
}

static apr_status_t sk_runtime_cleanup(void *data)
{
    sk_runtime *rt = data;
    sk_validator_destroy(rt->access);
    sk_validator_destroy(rt->id);
    sk_validator_destroy(rt->logout);
    sk_validator_destroy(rt->profile);
    sk_keystore_destroy(rt->keys);
    return APR_SUCCESS;
}

/* The module's cookies, which every request of the server loses before the
 * application (ScalekitStripCookies). */
static void sk_build_strip(apr_pool_t *p, sk_runtime *rt, const sk_server_conf *c)
{
    const char *own[] = { c->cookie_access, c->cookie_id, c->cookie_refresh,
                          c->cookie_session, c->cookie_profile };
    sk_cookie_names_init(p, &rt->own_cookies, own, 5, c->cookie_state);
}

/* Where the ID token cookie goes: the sign-in handler's path, the callback's
 * parent (…/callback: login, logout and session are its siblings), where
 * sign-out names it as id_token_hint and the session JSON shows it; protected
 * requests carry the profile cookie instead. NULL (Path=/, no profile) when
 * that parent is the root, or a __Host- name demands Path=/, or the path
 * holds a character a Set-Cookie attribute cannot carry as it is. */
static const char *sk_id_cookie_path(apr_pool_t *p, const sk_server_conf *c,
                                     const char *redirect_path)
{
    const char *slash = strrchr(redirect_path, '/');
    if (!slash || slash == redirect_path || sk_has_prefix(c->cookie_id, "__Host-")
        || c->store_provider)
        return NULL;
    for (const char *q = redirect_path; q < slash; q++)
        if (!apr_isalnum(*q) && !strchr("/-._~%!$&'()*+,=:@", *q))
            return NULL;
    return apr_pstrmemdup(p, redirect_path, (apr_size_t)(slash - redirect_path));
}

static const char *sk_build_runtime(apr_pool_t *p, server_rec *s, sk_server_conf *c)
{
    sk_runtime *rt = apr_pcalloc(p, sizeof(*rt));
    const char **auds = apr_pcalloc(p, sizeof(char *) * (c->audiences->nelts + 1));
    auds[0] = c->client_id;
    for (int i = 0; i < c->audiences->nelts; i++)
        auds[i + 1] = APR_ARRAY_IDX(c->audiences, i, const char *);
    rt->s = s;
    rt->http.timeout_ms = c->timeout * 1000L;
    rt->http.ca_file = c->ca_file;
    rt->jwks_url = apr_pstrcat(p, c->env_url, "/keys", NULL);
    rt->token_url = apr_pstrcat(p, c->env_url, "/oauth/token", NULL);
    apr_uri_t u;
    apr_uri_parse(p, c->redirect_uri, &u);
    rt->redirect_path = c->redirect_uri[0] == '/' ? c->redirect_uri : u.path;
    rt->switch_cookie = apr_pstrcat(p, c->cookie_state, "org", NULL);
    rt->id_cookie_path = sk_id_cookie_path(p, c, rt->redirect_path);
    rt->access_policy = (sk_policy){ c->env_url, auds, c->audiences->nelts + 1, c->algs,
                                     c->leeway, 1, 0, 1, NULL, 0 };
    /* An ID token names only the client in aud, and is kept as the profile of
     * a session after it expires: the access token carries the session's life. */
    rt->id_policy = (sk_policy){ c->env_url, auds, 1, c->algs, c->leeway, 0, 0, 0, c->client_id,
                                 0 };
    /* Back-channel logout tokens: for this client, typed logout+jwt or not, exp
     * optional (the handler checks iat, events, jti); rare, so not cached. */
    rt->logout_policy = (sk_policy){ c->env_url, auds, 1, c->algs, c->leeway, 0, 0, 0, NULL, 1 };
    rt->sealer = sk_sealer_create(p, c->client_secret, "mod_scalekit state cookie v1");
    /* Every server sharing a store shares the client secret, so it opens records
     * another one sealed; nobody who can only read or write the store can. */
    rt->record_sealer = sk_sealer_create(p, c->client_secret, "mod_scalekit session record v1");
    rt->keys = sk_keystore_create(sk_fetch_jwks, rt, c->jwks_ttl, c->jwks_min_refetch);
    rt->access = sk_validator_create(&rt->access_policy, rt->keys, (size_t)c->cache_entries);
    rt->id = sk_validator_create(&rt->id_policy, rt->keys, (size_t)c->cache_entries);
    rt->logout = sk_validator_create(&rt->logout_policy, rt->keys, 0);
    /* Profile cookies, sealed by rt->sealer: the id policy's check_exp=0 life in the cache. */
    rt->profile = sk_validator_create(&rt->id_policy, rt->keys, (size_t)c->cache_entries);
    if (!rt->sealer || !rt->record_sealer || !rt->keys || !rt->access || !rt->id || !rt->logout
        || !rt->profile
        || sk_revoke_init(p, rt) != APR_SUCCESS)
        return "mod_scalekit: cannot set up its key store, validators, sealing key or "
               "management token cache";
    sk_build_strip(p, rt, c);
    apr_pool_cleanup_register(p, rt, sk_runtime_cleanup, apr_pool_cleanup_null);
    c->rt = rt;
    return NULL;
}

/* Check every server that uses Scalekit; build its runtime when asked. */
static const char *sk_check_servers(apr_pool_t *p, server_rec *s, int build)
{
    for (; s; s = s->next) {
        sk_server_conf *c = ap_get_module_config(s->module_config, &scalekit_module);
        if (c->rt || !sk_server_wants_scalekit(c))
            continue;
        const char *err = sk_finish_server(p, s, c);
        if (!err)
            err = sk_store_check(p, c);
        if (!err && build)
            err = sk_build_runtime(p, s, c);
        if (err)
            return err;
    }
    return NULL;
}

/* Whether any section of the configuration read last sets ScalekitClaimHeaders
 * (parsed in the parent before the children fork; an .htaccess sets it in
 * its child before that request's header_parser): without, the every-request
 * scrub has nothing to do. */
int sk_claim_headers_used;

static int sk_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sk_claim_headers_used = 0;
    return ap_mutex_register(pconf, SK_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
           ? OK : 500;
}

/* Runs for "apache2 -t" too: a missing setting, or a missing module that
 * post_config will need (for every server: it opens the shared cache even
 * when none uses Scalekit), is refused before start-up. */
static int sk_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    (void)plog;
    const char *err = sk_shared_check();
    if (!err)
        err = sk_check_servers(ptemp, s, 0);
    (void)pconf;
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int sk_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    (void)plog;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;                    /* the first, throw-away configuration pass */
    const char *err = sk_check_servers(pconf, s, 1);
    if (err) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sk_status_post_config(pconf, s);
    if (sk_shared_post_config(pconf, ptemp, s) != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    sk_signout_post_config(s);
    for (server_rec *vs = s; vs; vs = vs->next) {
        sk_server_conf *c = ap_get_module_config(vs->module_config, &scalekit_module);
        if (c->rt && sk_store_post_config(pconf, ptemp, vs, c) != APR_SUCCESS)
            return HTTP_INTERNAL_SERVER_ERROR;
        if (c->rt)
            sk_shared_keys(pconf, c->rt);
    }
    return OK;
}

static void sk_child_init(apr_pool_t *p, server_rec *s)
{
    sk_shared_child_init(p, s);
    sk_redis_child_init(p, s);
}

/* ----------------------------------------------------------------- hooks */

/* Both handlers behind one hook: every request of the server, the module's
 * or not, asks the handler hooks in turn. */
static int sk_handlers(request_rec *r)
{
    if (!r->handler || r->handler[0] != 's')
        return DECLINED;
    int rv = sk_handler(r);
    return rv == DECLINED ? sk_status_handler(r) : rv;
}

static void sk_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(sk_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sk_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(sk_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sk_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* header_parser: after the per-directory walk, before authentication
     * (which adds the module's claim headers) and whatever the authorization;
     * a subrequest skips it, and passes access_checker instead. */
    ap_hook_header_parser(sk_scrub_claim_lookalikes, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_access(sk_scrub_subrequest_lookalikes, NULL, NULL, APR_HOOK_FIRST,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authn(sk_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    /* fixups: after authentication read the cookies, before the handler, CGI
     * environment or proxy; last, after mod_dir's and mod_rewrite's. */
    ap_hook_fixups(sk_strip_cookies_fixup, NULL, NULL, APR_HOOK_REALLY_LAST);
    ap_hook_insert_filter(sk_insert_private_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(SK_PRIVATE_FILTER, sk_private_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
    ap_hook_handler(sk_handlers, NULL, NULL, APR_HOOK_MIDDLE);
    /* A signed-in user refused by a Require scalekit-* rule: 403, not 401. */
    ap_hook_note_auth_failure(sk_note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(sk_forbidden_status, NULL, NULL, APR_HOOK_MIDDLE);
    sk_register_authz(p);
}

AP_DECLARE_MODULE(scalekit) = {
    STANDARD20_MODULE_STUFF,
    sk_create_dir_conf,
    sk_merge_dir_conf,
    sk_create_server_conf,
    sk_merge_server_conf,
    sk_cmds,
    sk_register_hooks,
    AP_MODULE_FLAG_NONE
};
