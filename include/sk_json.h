/* SPDX-License-Identifier: Apache-2.0 */
/* sk_json.h: the JSON reading every component shares (cJSON underneath).
 * Links without httpd. */
#ifndef SK_JSON_H
#define SK_JSON_H

#include <stddef.h>
#include <apr_pools.h>
#include <cjson/cJSON.h>

/* Parse exactly n bytes as one JSON value: nothing but white space may follow
 * it (cJSON alone stops at the end of the value and ignores the rest). NULL
 * when the bytes are not that; else a tree the caller frees with cJSON_Delete. */
cJSON *sk_json_parse_exact(const char *buf, size_t n);

/* The string member name of o, copied into p; NULL when it is absent, not a
 * string, or empty (no token, id or URL of ours is empty). */
const char *sk_json_string(apr_pool_t *p, const cJSON *o, const char *name);

#endif
