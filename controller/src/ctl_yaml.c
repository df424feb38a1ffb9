/* ctl_yaml.c: the kubeconfig YAML subset reader. It works line by line with an explicit
 * stack of open collections (no recursion), so input depth is bounded by
 * CTL_YAML_MAX_DEPTH. */
#include "ctl_yaml.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct yframe {
    int indent;  /* column of the keys (mapping) or of the dashes (sequence) */
    cJSON *node; /* an object or an array */
};

struct yparser {
    struct yframe st[CTL_YAML_MAX_DEPTH + 1];
    int depth; /* frames in st */
    /* a key or dash whose value is on the following lines */
    cJSON *pend_parent;
    char *pend_key; /* NULL when the parent is an array */
    int pend_indent;
    bool pending;
    int lineno;
    char *err;
    size_t errcap;
};

static int yfail(struct yparser *p, const char *msg)
{
    snprintf(p->err, p->errcap, "line %d: %s", p->lineno, msg);
    return -1;
}

/* Returns the length of the line content without a trailing comment and spaces. A '#'
 * starts a comment at the start or after a space, outside quotes. */
static size_t ystrip(const char *s, size_t len)
{
    char q = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (q) {
            if (c == q && q == '"' && i > 0 && s[i - 1] == '\\')
                continue;
            if (c == q)
                q = 0;
        } else if ((c == '"' || c == '\'') && (i == 0 || s[i - 1] == ' ' || s[i - 1] == ':' ||
                                               s[i - 1] == '-')) {
            q = c;
        } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
            len = i;
            break;
        }
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    return len;
}

/* Appends the UTF-8 encoding of cp to out at *o. */
static void yutf8(char *out, size_t *o, unsigned cp)
{
    if (cp < 0x80)
        out[(*o)++] = (char)cp;
    else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 63));
    } else {
        out[(*o)++] = (char)(0xE0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 63));
        out[(*o)++] = (char)(0x80 | (cp & 63));
    }
}

/* Decodes a scalar s[0..len) (plain, 'single' or "double" quoted) into a fresh string.
 * Returns NULL on a malformed quote (err set) or OOM. */
static char *yscalar(struct yparser *p, const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    if (!out) {
        yfail(p, "out of memory");
        return NULL;
    }
    if (len && (s[0] == '\'' || s[0] == '"')) {
        char q = s[0];
        if (len < 2 || s[len - 1] != q)
            goto bad;
        for (size_t i = 1; i < len - 1; i++) {
            char c = s[i];
            if (q == '\'' && c == '\'') {
                if (i + 1 < len - 1 && s[i + 1] == '\'') {
                    out[o++] = '\'';
                    i++;
                    continue;
                }
                goto bad;
            }
            if (q == '"' && c == '\\') {
                if (++i >= len - 1)
                    goto bad;
                switch (s[i]) {
                case 'n': out[o++] = '\n'; break;
                case 't': out[o++] = '\t'; break;
                case 'r': out[o++] = '\r'; break;
                case '0': goto bad;
                case '"': case '\\': case '/': out[o++] = s[i]; break;
                case 'u': {
                    unsigned cp = 0;
                    if (len - 1 - i < 5)
                        goto bad;
                    for (int k = 1; k <= 4; k++) {
                        char h = s[i + k];
                        int v = h >= '0' && h <= '9'   ? h - '0'
                                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                       : -1;
                        if (v < 0)
                            goto bad;
                        cp = cp << 4 | (unsigned)v;
                    }
                    if (cp == 0)
                        goto bad;
                    i += 4;
                    yutf8(out, &o, cp); /* 6 input bytes give at most 3 */
                    break;
                }
                default: goto bad;
                }
                continue;
            }
            if (q == '"' && c == '"')
                goto bad;
            out[o++] = c;
        }
    } else {
        if (len && (s[0] == '&' || s[0] == '*' || s[0] == '!' || s[0] == '|' || s[0] == '>' ||
                    s[0] == '%' || s[0] == '@' || s[0] == '`')) {
            free(out);
            yfail(p, "anchors, tags and block scalars are not supported");
            return NULL;
        }
        memcpy(out, s, len);
        o = len;
    }
    out[o] = 0;
    return out;
bad:
    free(out);
    yfail(p, "malformed quoted scalar");
    return NULL;
}

/* Returns the offset of the ':' that ends a mapping key in s[0..len), or -1 when the
 * line is not a "key: value" or "key:" line. */
static long ykey_end(const char *s, size_t len)
{
    size_t i = 0;
    if (len && (s[0] == '"' || s[0] == '\'')) {
        char q = s[0];
        for (i = 1; i < len; i++) {
            if (q == '"' && s[i] == '\\') {
                i++;
                continue;
            }
            if (s[i] == q) {
                if (q == '\'' && i + 1 < len && s[i + 1] == '\'') {
                    i++;
                    continue;
                }
                break;
            }
        }
        if (i >= len)
            return -1;
        i++;
        return i < len && s[i] == ':' && (i + 1 == len || s[i + 1] == ' ') ? (long)i : -1;
    }
    for (; i < len; i++)
        if (s[i] == ':' && (i + 1 == len || s[i + 1] == ' ' || s[i + 1] == '\t'))
            return (long)i;
    return -1;
}

static int ypush(struct yparser *p, int indent, cJSON *node)
{
    if (p->depth > CTL_YAML_MAX_DEPTH)
        return yfail(p, "nesting too deep");
    p->st[p->depth].indent = indent;
    p->st[p->depth].node = node;
    p->depth++;
    return 0;
}

/* Attaches v (consumed) under key in obj, or to the array obj when key is NULL. */
static int yattach(struct yparser *p, cJSON *obj, const char *key, cJSON *v)
{
    if (!v)
        return yfail(p, "out of memory");
    if (key) {
        if (cJSON_GetObjectItemCaseSensitive(obj, key))
            cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (cJSON_AddItemToObject(obj, key, v))
            return 0;
    } else if (cJSON_AddItemToArray(obj, v))
        return 0;
    cJSON_Delete(v);
    return yfail(p, "out of memory");
}

/* Makes the value of s[0..len): {} and [] are empty collections, anything else a string. */
static cJSON *yvalue(struct yparser *p, const char *s, size_t len)
{
    if (len == 2 && !memcmp(s, "{}", 2))
        return cJSON_CreateObject();
    if (len == 2 && !memcmp(s, "[]", 2))
        return cJSON_CreateArray();
    if (len && (s[0] == '{' || s[0] == '[')) {
        yfail(p, "flow collections other than {} and [] are not supported");
        return NULL;
    }
    char *v = yscalar(p, s, len);
    if (!v)
        return NULL;
    cJSON *j = cJSON_CreateString(v);
    free(v);
    if (!j)
        yfail(p, "out of memory");
    return j;
}

/* Handles "key: value" or "key:" at column col inside the mapping obj. */
static int ymap_line(struct yparser *p, cJSON *obj, int col, const char *s, size_t len)
{
    long k = ykey_end(s, len);
    if (k < 0)
        return yfail(p, "expected \"key: value\"");
    char *key = yscalar(p, s, (size_t)k);
    if (!key)
        return -1;
    size_t v = (size_t)k + 1;
    while (v < len && (s[v] == ' ' || s[v] == '\t'))
        v++;
    if (v == len) {
        p->pending = true;
        p->pend_parent = obj;
        p->pend_key = key;
        p->pend_indent = col;
        return 0;
    }
    int rc = -1;
    cJSON *val = yvalue(p, s + v, len - v);
    if (val)
        rc = yattach(p, obj, key, val);
    free(key);
    return rc;
}

/* Handles "- ..." whose dash is at column col, inside the array arr. */
static int yseq_line(struct yparser *p, cJSON *arr, int col, const char *s, size_t len)
{
    size_t r = 1;
    while (r < len && s[r] == ' ')
        r++;
    if (r == len) {
        p->pending = true;
        p->pend_parent = arr;
        p->pend_key = NULL;
        p->pend_indent = col;
        return 0;
    }
    const char *rest = s + r;
    size_t rlen = len - r;
    if (rest[0] == '-' && (rlen == 1 || rest[1] == ' '))
        return yfail(p, "nested sequences on one line are not supported");
    if (ykey_end(rest, rlen) >= 0) {
        cJSON *obj = cJSON_CreateObject();
        if (yattach(p, arr, NULL, obj) < 0 || ypush(p, col + (int)r, obj) < 0)
            return -1;
        return ymap_line(p, obj, col + (int)r, rest, rlen);
    }
    return yattach(p, arr, NULL, yvalue(p, rest, rlen));
}

/* Gives a pending key or dash its value: a collection opened by the line at indent
 * (is_dash: the line starts with "- "), or an empty string when the line is not nested. */
static int yresolve(struct yparser *p, int indent, bool is_dash)
{
    bool nested = indent > p->pend_indent ||
                  (is_dash && indent == p->pend_indent && p->pend_key != NULL);
    cJSON *v = !nested ? cJSON_CreateString("") : is_dash ? cJSON_CreateArray()
                                                          : cJSON_CreateObject();
    int rc = yattach(p, p->pend_parent, p->pend_key, v);
    free(p->pend_key);
    p->pend_key = NULL;
    p->pending = false;
    if (rc == 0 && nested)
        rc = ypush(p, indent, v);
    return rc;
}

static int yline(struct yparser *p, const char *s, size_t len)
{
    int indent = 0;
    while ((size_t)indent < len && s[indent] == ' ')
        indent++;
    if ((size_t)indent < len && s[indent] == '\t')
        return yfail(p, "tabs are not allowed for indentation");
    len = ystrip(s, len);
    if ((size_t)indent >= len)
        return 0; /* blank or comment */
    s += indent;
    len -= (size_t)indent;
    if (indent == 0 && len >= 3 && (!memcmp(s, "---", 3) || !memcmp(s, "...", 3)) &&
        (len == 3 || s[3] == ' '))
        return 0; /* document markers: a kubeconfig holds one document */
    bool dash = s[0] == '-' && (len == 1 || s[1] == ' ');
    if (p->pending && yresolve(p, indent, dash) < 0)
        return -1;
    while (p->depth > 1 && p->st[p->depth - 1].indent > indent)
        p->depth--;
    struct yframe *top = &p->st[p->depth - 1];
    if (cJSON_IsArray(top->node) && top->indent == indent && !dash && p->depth > 1) {
        p->depth--;
        top = &p->st[p->depth - 1];
    }
    if (top->indent != indent)
        return yfail(p, "unexpected indentation");
    if (dash) {
        if (!cJSON_IsArray(top->node))
            return yfail(p, "a sequence item where a mapping key was expected");
        return yseq_line(p, top->node, indent, s, len);
    }
    if (!cJSON_IsObject(top->node))
        return yfail(p, "a mapping key where a sequence item was expected");
    return ymap_line(p, top->node, indent, s, len);
}

cJSON *ctl_yaml_parse(const char *text, size_t len, char *err, size_t errcap)
{
    struct yparser p = {.err = err, .errcap = errcap};
    cJSON *root = NULL;
    if (len > CTL_YAML_MAX_BYTES) {
        snprintf(err, errcap, "document larger than %u bytes", CTL_YAML_MAX_BYTES);
        return NULL;
    }
    if (memchr(text, 0, len)) {
        snprintf(err, errcap, "document contains a NUL byte");
        return NULL;
    }
    root = cJSON_CreateObject();
    if (!root || ypush(&p, 0, root) < 0)
        goto fail;
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - (text + off)) : len - off;
        p.lineno++;
        if (yline(&p, text + off, ll) < 0)
            goto fail;
        off += ll + (nl ? 1 : 0);
    }
    if (p.pending && yresolve(&p, -1, false) < 0)
        goto fail;
    return root;
fail:
    free(p.pend_key);
    cJSON_Delete(root);
    return NULL;
}
