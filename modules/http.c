/* SPDX-License-Identifier: Apache-2.0 */
/* http.c: calls to the identity provider, bounded in time and size.
 *
 * libcurl is loaded with dlopen on the first call, in the child that makes
 * it, not linked into the module: its ~30 dependent libraries would otherwise
 * be mapped into httpd's parent and so into mod_cgid's daemon, and every CGI
 * fork pays for each mapping (measured: CGI at 0.74x with libcurl loaded). */
#define CURL_DISABLE_TYPECHECK     /* calls go through our own pointers */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <curl/curl.h>
#include "sk_http.h"

#define SK_HTTP_DEFAULT_TIMEOUT_MS 5000L
#define SK_HTTP_DEFAULT_MAX_BODY   (1024 * 1024)
#define SK_LIBCURL "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_reset)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    int loaded;
    char error[160];
} sk_curl;

static pthread_key_t sk_http_handle_key;
static pthread_once_t sk_http_once = PTHREAD_ONCE_INIT;

static void sk_http_handle_free(void *h)
{
    sk_curl.easy_cleanup((CURL *)h);
}

#define SK_SYM(field, name)                                                     \
    if (!(*(void **)&sk_curl.field = dlsym(lib, name))) {                       \
        snprintf(sk_curl.error, sizeof(sk_curl.error), "%s lacks %s", SK_LIBCURL, name); \
        return;                                                                 \
    }

static void sk_http_load(void)
{
    void *lib = dlopen(SK_LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(sk_curl.error, sizeof(sk_curl.error), "cannot load %s: %s", SK_LIBCURL,
                 dlerror());
        return;
    }
    SK_SYM(global_init, "curl_global_init");
    SK_SYM(easy_init, "curl_easy_init");
    SK_SYM(easy_setopt, "curl_easy_setopt");
    SK_SYM(easy_perform, "curl_easy_perform");
    SK_SYM(easy_getinfo, "curl_easy_getinfo");
    SK_SYM(easy_reset, "curl_easy_reset");
    SK_SYM(easy_cleanup, "curl_easy_cleanup");
    SK_SYM(easy_strerror, "curl_easy_strerror");
    SK_SYM(slist_append, "curl_slist_append");
    SK_SYM(slist_free_all, "curl_slist_free_all");
    if (sk_curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(sk_curl.error, sizeof(sk_curl.error), "curl_global_init failed");
        return;
    }
    pthread_key_create(&sk_http_handle_key, sk_http_handle_free);
    sk_curl.loaded = 1;
}

/* One handle per thread: curl_easy_reset keeps its connection cache, so the
 * next token request to the same identity provider skips the TCP/TLS setup. */
static CURL *sk_http_handle(void)
{
    CURL *h = pthread_getspecific(sk_http_handle_key);
    if (h) {
        sk_curl.easy_reset(h);
        return h;
    }
    h = sk_curl.easy_init();
    if (h)
        pthread_setspecific(sk_http_handle_key, h);
    return h;
}

typedef struct {
    sk_http_resp *resp;
    size_t cap, max;
    int too_large;
} sk_http_sink;

static size_t sk_http_write(char *data, size_t size, size_t n, void *userdata)
{
    sk_http_sink *s = userdata;
    size_t len = size * n;
    if (s->resp->len + len > s->max) {
        s->too_large = 1;
        return 0;                       /* makes curl stop with a write error */
    }
    if (s->resp->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->resp->len + len + 1)
            cap *= 2;
        char *b = realloc(s->resp->body, cap);
        if (!b)
            return 0;
        s->resp->body = b;
        s->cap = cap;
    }
    memcpy(s->resp->body + s->resp->len, data, len);
    s->resp->len += len;
    s->resp->body[s->resp->len] = '\0';
    return len;
}

static void sk_http_setopts(CURL *h, const sk_http_opts *o, const char *url,
                            const char *form_body, sk_http_sink *sink)
{
    long timeout = o->timeout_ms > 0 ? o->timeout_ms : SK_HTTP_DEFAULT_TIMEOUT_MS;
    long connect = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                 : (timeout < 3000 ? timeout : 3000);
    sk_curl.easy_setopt(h, CURLOPT_URL, url);
    sk_curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);          /* threads: no SIGALRM */
    sk_curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    sk_curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect);
    sk_curl.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    sk_curl.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);    /* never follow elsewhere */
    sk_curl.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    sk_curl.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        sk_curl.easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    sk_curl.easy_setopt(h, CURLOPT_USERAGENT, "mod_scalekit/0.1");
    sk_curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, sk_http_write);
    sk_curl.easy_setopt(h, CURLOPT_WRITEDATA, sink);
    if (form_body) {
        sk_curl.easy_setopt(h, CURLOPT_POST, 1L);
        sk_curl.easy_setopt(h, CURLOPT_POSTFIELDS, form_body);
        sk_curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(form_body));
    }
}

apr_status_t sk_http_request(const sk_http_opts *o, const char *url, const char *form_body,
                             sk_http_resp *out)
{
    memset(out, 0, sizeof(*out));
    pthread_once(&sk_http_once, sk_http_load);
    if (!sk_curl.loaded) {
        snprintf(out->err, sizeof(out->err), "%s", sk_curl.error);
        return APR_ENOTIMPL;
    }
    CURL *h = sk_http_handle();
    if (!h) {
        strcpy(out->err, "curl_easy_init failed");
        return APR_ENOMEM;
    }
    sk_http_sink sink = { out, 0, o->max_body ? o->max_body : SK_HTTP_DEFAULT_MAX_BODY, 0 };
    struct curl_slist *hdrs = sk_curl.slist_append(NULL, "Accept: application/json");
    char auth[4096];
    if (o->bearer && strlen(o->bearer) < sizeof(auth) - 32) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->bearer);
        hdrs = sk_curl.slist_append(hdrs, auth);
    }
    sk_curl.easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    sk_http_setopts(h, o, url, form_body, &sink);
    CURLcode rc = sk_curl.easy_perform(h);
    sk_curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    sk_curl.easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    sk_curl.slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        if (sink.too_large)
            strcpy(out->err, "answer larger than the size limit");
        else
            strncpy(out->err, sk_curl.easy_strerror(rc), sizeof(out->err) - 1);
        sk_http_resp_free(out);
        out->status = 0;
        return sink.too_large ? APR_ENOSPC : rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP
                                                                            : APR_EGENERAL;
    }
    if (!out->body) {                    /* an empty answer: keep body a string */
        out->body = calloc(1, 1);
        if (!out->body) {
            strcpy(out->err, "out of memory");
            return APR_ENOMEM;
        }
    }
    return APR_SUCCESS;
}

void sk_http_resp_free(sk_http_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
