/* fuzz_admin_json.c: libFuzzer target for the admin HTTP API's request handling: the
 * router, query parameters, path segments and every JSON body (POST/PATCH /v1/topics,
 * PUT /v1/principals/{name}, PUT /v1/share-groups/{id}, dataset actions), through
 * admin_handle_for_test() so that no HTTP or socket is involved. The input is one
 * request, or up to FZ_MAX_REQS joined by FZ_SEP (one builds state the next meets: a
 * topic with a wide shared view, then its share group described), each
 *   "<METHOD> <url>\n<body>"
 * (url: escaped path with an optional "?query"; no newline: a GET without a body). The
 * broker is fuzz_broker.h's, without an admin token. Checked beyond "no crash": every
 * request gets a response with a status from 200 to 599, and every body that is not
 * empty or metrics text is valid JSON. */
#include "fuzz_broker.h"

#include "admin.h"

#include <cjson/cJSON.h>

enum { FZ_LINE_MAX = 8192, FZ_MAX_REQS = 16 };

static const char FZ_SEP[] = "\n#REQUEST#\n"; /* between requests of one input */

/* Splits "<METHOD> <url>" off the input into method and url (NUL-terminated copies).
 * Returns the offset of the body, or -1 when there is no method line. */
static long fz_request_line(const uint8_t *data, size_t size, char *method, size_t mcap, char *url,
                            size_t ucap)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ll = nl ? (size_t)(nl - data) : size;
    const uint8_t *sp = memchr(data, ' ', ll);
    if (!sp || (size_t)(sp - data) >= mcap || ll - (size_t)(sp - data) - 1 >= ucap)
        return -1;
    size_t ml = (size_t)(sp - data), ul = ll - ml - 1;
    if (memchr(data, 0, ll))
        return -1; /* MHD hands handlers C strings */
    memcpy(method, data, ml);
    method[ml] = 0;
    memcpy(url, sp + 1, ul);
    url[ul] = 0;
    return nl ? (long)(ll + 1) : (long)size;
}

/* Answers one request (size bytes at data) and checks the answer. */
static void fz_request(struct broker *b, const uint8_t *data, size_t size)
{
    static char method[32], url[FZ_LINE_MAX];
    long at = fz_request_line(data, size, method, sizeof method, url, sizeof url);
    if (at < 0)
        return;
    size_t blen = size - (size_t)at;
    char *body = malloc(blen ? blen : 1); /* exact size: ASan sees a read past the end */
    if (!body)
        abort();
    memcpy(body, data + at, blen);
    int status = 0;
    char *out = NULL;
    size_t out_len = 0;
    if (admin_handle_for_test(b, method, url, NULL, body, blen, &status, &out, &out_len) == 0) {
        if (status < 200 || status > 599)
            __builtin_trap();
        bool text = !strncmp(url, "/metrics", 8) && (!url[8] || url[8] == '?');
        cJSON *j = out_len && !text ? cJSON_ParseWithLength(out, out_len) : NULL;
        if (out_len && !text && !j)
            __builtin_trap(); /* the API answers JSON */
        cJSON_Delete(j);
    }
    free(out);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct broker *b = fzb_get();
    const uint8_t *p = data, *end = data + size;
    for (int n = 0; n < FZ_MAX_REQS; n++) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), FZ_SEP, sizeof FZ_SEP - 1);
        fz_request(b, p, (size_t)((sep ? sep : end) - p));
        if (!sep)
            break;
        p = sep + sizeof FZ_SEP - 1;
    }
    return 0;
}
