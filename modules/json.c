/* SPDX-License-Identifier: Apache-2.0 */
/* json.c: the JSON reading every component shares (see sk_json.h). */
#include <apr_strings.h>
#include "sk_json.h"

cJSON *sk_json_parse_exact(const char *buf, size_t n)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!o)
        return NULL;
    while (end < buf + n && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != buf + n) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

const char *sk_json_string(apr_pool_t *p, const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring[0] ? apr_pstrdup(p, v->valuestring) : NULL;
}
