/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_shared.c: what the children of one httpd share, and keep across
 * graceful restarts.
 *
 * One shmcb cache and the global mutex around it hold refresh records (see
 * httpd_refresh.c) and the last good JWKS, so that a child born while the
 * identity provider is down can still validate tokens. shmcb session stores
 * (httpd_store.c) are opened here too. shmcb instances and the mutex live in
 * the process pool, found again by name on every restart: a graceful restart
 * keeps sessions, refresh answers and keys. Providers are looked up afresh
 * each generation; mod_socache_shmcb itself stays mapped (see sk_pin_dso). */
#include <dlfcn.h>
#include <string.h>
#include <stdlib.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "util_mutex.h"
#include "apr_strings.h"

#include "sk_module.h"
#include "sk_b64.h"

sk_shared sk_shared_store;

#define SK_SHARED_SIZE  (4 * 1024 * 1024)      /* ~a thousand refresh answers + keys */
#define SK_JWKS_MAX     (128 * 1024)           /* bigger key sets are not shared */
#define SK_JWKS_KEEP    apr_time_from_sec(30 * 86400)

typedef struct sk_socache_ref {
    ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    server_rec *s;
} sk_socache_ref;

static apr_status_t sk_socache_destroy(void *data)
{
    sk_socache_ref *ref = data;
    ref->provider->destroy(ref->instance, ref->s);
    return APR_SUCCESS;
}

/* A provider whose instance outlives a generation must outlive it too: its
 * init registers a cleanup (its own function) in the process pool, and a
 * restart or the final stop would otherwise run that cleanup after mod_so
 * unloaded the module (a crash at "apache2 -k stop"). RTLD_NOLOAD only
 * marks the loaded object NODELETE; nothing new is loaded. */
static void sk_pin_dso(server_rec *s, const ap_socache_provider_t *provider)
{
    Dl_info info;
    union { const char *(*fn)(ap_socache_instance_t **, const char *, apr_pool_t *,
                              apr_pool_t *); void *p; } addr = { provider->create };
    if (!dladdr(addr.p, &info) || !info.dli_fname
        || !dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_scalekit: cannot keep the shared "
                     "object cache module loaded across restarts: %s", dlerror());
}

apr_status_t sk_socache_open(server_rec *s, apr_pool_t *pconf, apr_pool_t *ptemp,
                             const char *name, const char *args, const char *ns,
                             const struct ap_socache_hints *hints,
                             ap_socache_provider_t **provider,
                             ap_socache_instance_t **instance, const char **err)
{
    int keep = !strcmp(name, "shmcb");
    apr_pool_t *pool = keep ? s->process->pool : pconf;
    const char *tag = apr_pstrcat(ptemp, "mod_scalekit socache ", ns, " ", args ? args : "",
                                  NULL);
    void *found = NULL;
    *err = NULL;
    *provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                   AP_SOCACHE_PROVIDER_VERSION);
    if (!*provider) {
        *err = apr_psprintf(ptemp, "no shared object cache \"%s\": load it first "
                            "(LoadModule socache_%s_module, Debian: a2enmod socache_%s)",
                            name, name, name);
        return APR_EGENERAL;
    }
    if (keep)
        sk_pin_dso(s, *provider);
    if (keep && (found = sk_process_find(s, tag))) {
        *instance = found;               /* a restart: the same memory, its entries kept */
        return APR_SUCCESS;
    }
    *err = (*provider)->create(instance, args, ptemp, pool);
    if (*err)
        return APR_EINVAL;
    apr_status_t rv = (*provider)->init(*instance, ns, hints, s, pool);
    if (rv != APR_SUCCESS) {
        *err = "cannot initialise it";
        return rv;
    }
    if (keep)                            /* freed with the process */
        return sk_process_keep(s, tag, *instance);
    sk_socache_ref *ref = apr_palloc(pconf, sizeof(*ref));
    *ref = (sk_socache_ref){ *provider, *instance, s };
    apr_pool_cleanup_register(pconf, ref, sk_socache_destroy, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

/* The global mutex, made once per parent process (its memory must outlive a
 * generation while the old generation's children still hold it). */
static apr_status_t sk_shared_mutex(server_rec *s, apr_global_mutex_t **mutex)
{
    const char *tag = "mod_scalekit " SK_MUTEX_TYPE " mutex";
    if ((*mutex = sk_process_find(s, tag)))
        return APR_SUCCESS;
    apr_status_t rv = ap_global_mutex_create(mutex, NULL, SK_MUTEX_TYPE, NULL, s,
                                             s->process->pool, 0);
    if (rv == APR_SUCCESS)
        rv = sk_process_keep(s, tag, *mutex);
    return rv;
}

const char *sk_shared_check(void)
{
    if (ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb", AP_SOCACHE_PROVIDER_VERSION))
        return NULL;
    return "mod_scalekit needs mod_socache_shmcb to share refreshes and keys between "
           "processes, and it is not loaded: LoadModule socache_shmcb_module "
           "modules/mod_socache_shmcb.so (Debian: a2enmod socache_shmcb)";
}

apr_status_t sk_shared_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    struct ap_socache_hints hints = { 32, 3000, apr_time_from_sec(60) };
    sk_shared *sh = &sk_shared_store;
    const char *err = NULL;
    const char *args = apr_psprintf(ptemp, "%s(%d)", ap_runtime_dir_relative(ptemp,
                                    "scalekit-refresh"), SK_SHARED_SIZE);
    apr_status_t rv = sk_socache_open(s, pconf, ptemp, "shmcb", args, "scalekit", &hints,
                                      &sh->provider, &sh->instance, &err);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_scalekit needs mod_socache_shmcb "
                     "to share refreshes and keys between processes: %s", err);
        return rv;
    }
    rv = sk_shared_mutex(s, &sh->mutex);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_scalekit: cannot create the "
                     "%s mutex", SK_MUTEX_TYPE);
    return rv;
}

void sk_shared_child_init(apr_pool_t *p, server_rec *s)
{
    sk_shared *sh = &sk_shared_store;
    if (!sh->mutex)
        return;
    apr_status_t rv = apr_global_mutex_child_init(&sh->mutex,
                                                  apr_global_mutex_lockfile(sh->mutex), p);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_scalekit: cannot attach to the "
                     "%s mutex in this child", SK_MUTEX_TYPE);
}

/* ------------------------------------------------ the last good JWKS */

/* Sealed like refresh records (record_sealer), bound to its key: whoever can
 * write the shmcb segment (code running inside a child, e.g. an embedded
 * interpreter) must not plant signing keys every process would then trust.
 * Plain text "<fetched>\n<document>" inside the seal. A copy that does not
 * open is no copy: the process fetches from the IdP instead. */
#define SK_JWKS_SEALED_MAX  SK_B64URL_ENCLEN(SK_JWKS_MAX + 64)

static apr_status_t sk_jwks_load(void *ctx, char **body, size_t *len, int64_t *fetched)
{
    sk_runtime *rt = ctx;
    sk_shared *sh = &sk_shared_store;
    apr_pool_t *p;
    unsigned int n = SK_JWKS_SEALED_MAX;
    if (!sh->instance || apr_pool_create(&p, NULL) != APR_SUCCESS)
        return APR_NOTFOUND;
    unsigned char *buf = apr_palloc(p, SK_JWKS_SEALED_MAX + 1);
    const char *key = rt->jwks_cache_key;
    size_t plen = 0;
    char *plain = NULL, *nl = NULL, *end = NULL;
    long long t = 0;
    apr_global_mutex_lock(sh->mutex);
    apr_status_t rv = sh->provider->retrieve(sh->instance, rt->s, (const unsigned char *)key,
                                             (unsigned int)strlen(key), buf, &n, p);
    apr_global_mutex_unlock(sh->mutex);
    if (rv == APR_SUCCESS) {
        buf[n] = '\0';
        plain = sk_unseal_bound(p, rt->record_sealer, key, (const char *)buf,
                                SK_JWKS_SEALED_MAX, &plen);
        if (!plain)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, rt->s, "mod_scalekit: the shared JWKS "
                         "copy does not open under this server's key (altered, or planted): "
                         "ignored");
    }
    if (plain && (nl = memchr(plain, '\n', plen)))
        t = strtoll(plain, &end, 10);
    if (!nl || end != nl || t <= 0 || !(*body = malloc(plen + 1))) {
        apr_pool_destroy(p);
        return APR_NOTFOUND;
    }
    *len = plen - (size_t)(nl + 1 - plain);
    memcpy(*body, nl + 1, *len + 1);
    *fetched = t;
    apr_pool_destroy(p);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, rt->s, "JWKS: using the copy another process "
                 "of this server fetched %" APR_INT64_T_FMT " s ago",
                 (apr_int64_t)apr_time_sec(apr_time_now()) - *fetched);
    return APR_SUCCESS;
}

static void sk_jwks_save(void *ctx, const char *body, size_t len, int64_t fetched)
{
    sk_runtime *rt = ctx;
    sk_shared *sh = &sk_shared_store;
    apr_pool_t *p;
    if (!sh->instance || len > SK_JWKS_MAX - 32 || apr_pool_create(&p, NULL) != APR_SUCCESS)
        return;
    const char *key = rt->jwks_cache_key;
    char *head = apr_psprintf(p, "%" APR_INT64_T_FMT "\n", (apr_int64_t)fetched);
    size_t hlen = strlen(head);
    char *value = apr_palloc(p, hlen + len);             /* body: not NUL-terminated */
    memcpy(value, head, hlen);
    memcpy(value + hlen, body, len);
    char *sealed = sk_seal_bound(p, rt->record_sealer, key, value, hlen + len);
    apr_status_t rv = APR_EGENERAL;
    if (sealed) {
        apr_global_mutex_lock(sh->mutex);
        rv = sh->provider->store(sh->instance, rt->s, (const unsigned char *)key,
                                 (unsigned int)strlen(key), apr_time_now() + SK_JWKS_KEEP,
                                 (unsigned char *)sealed, (unsigned int)strlen(sealed), p);
        apr_global_mutex_unlock(sh->mutex);
    }
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, rt->s, "mod_scalekit: could not share the "
                     "JWKS with other processes (shared cache full?)");
    else
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, rt->s, "JWKS from %s shared with this "
                     "server's other processes", rt->jwks_url);
    apr_pool_destroy(p);
}

/* Keyed by the client too: servers with other clients (other secrets, so
 * other sealing keys) of the same environment keep copies of their own
 * instead of overwriting each other's with records the other cannot open. */
void sk_shared_keys(apr_pool_t *pconf, sk_runtime *rt)
{
    rt->jwks_cache_key = sk_hashed_key(pconf, "k", apr_pstrcat(pconf, rt->jwks_url, " ",
                                       rt->access_policy.audiences[0], NULL));
    sk_keystore_shared cb = { sk_jwks_load, sk_jwks_save, rt };
    sk_keystore_set_shared(rt->keys, &cb);
}
