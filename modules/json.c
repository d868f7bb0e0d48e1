/* json.c: the JSON reading every component shares (see sk_json.h). */
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
