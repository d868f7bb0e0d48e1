/* http.c: libcurl calls to the identity provider, bounded in time and size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <curl/curl.h>
#include "sk_http.h"

#define SK_HTTP_DEFAULT_TIMEOUT_MS 5000L
#define SK_HTTP_DEFAULT_MAX_BODY   (1024 * 1024)

static pthread_key_t sk_http_handle_key;
static pthread_once_t sk_http_once = PTHREAD_ONCE_INIT;

static void sk_http_handle_free(void *h)
{
    curl_easy_cleanup((CURL *)h);
}

static void sk_http_key_init(void)
{
    pthread_key_create(&sk_http_handle_key, sk_http_handle_free);
}

void sk_http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_once(&sk_http_once, sk_http_key_init);
}

/* One handle per thread: curl_easy_reset keeps its connection cache, so the
 * next token request to the same identity provider skips the TCP/TLS setup. */
static CURL *sk_http_handle(void)
{
    pthread_once(&sk_http_once, sk_http_key_init);
    CURL *h = pthread_getspecific(sk_http_handle_key);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
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
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);          /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);    /* never follow elsewhere */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mod_scalekit/0.1");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sk_http_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    if (form_body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(form_body));
    }
}

int sk_http_request(const sk_http_opts *o, const char *url, const char *form_body,
                    sk_http_resp *out)
{
    memset(out, 0, sizeof(*out));
    CURL *h = sk_http_handle();
    if (!h) {
        strcpy(out->err, "curl_easy_init failed");
        return -1;
    }
    sk_http_sink sink = { out, 0, o->max_body ? o->max_body : SK_HTTP_DEFAULT_MAX_BODY, 0 };
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    char auth[4096];
    if (o->bearer && strlen(o->bearer) < sizeof(auth) - 32) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    sk_http_setopts(h, o, url, form_body, &sink);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        if (sink.too_large)
            strcpy(out->err, "answer larger than the size limit");
        else
            strncpy(out->err, curl_easy_strerror(rc), sizeof(out->err) - 1);
        sk_http_resp_free(out);
        out->status = 0;
        return -1;
    }
    if (!out->body) {                    /* an empty answer: keep body a string */
        out->body = calloc(1, 1);
        if (!out->body) {
            strcpy(out->err, "out of memory");
            return -1;
        }
    }
    return 0;
}

void sk_http_resp_free(sk_http_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
