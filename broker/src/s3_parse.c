/* s3_parse.c: the S3 client's pure parts, with no I/O: the canonical URLs SigV4 needs
 * on curl 7.88 (RFC 3986 path segments, sorted and encoded query keys), s3:// URIs, and
 * a small bounded XML scanner for ListObjectsV2 and <Error> bodies. Kept apart from
 * s3.c so that unit tests and fuzzers reach it without curl or an event loop. */
#include "s3_parse.h"

#include "kcodec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S3_MAX_TOKEN 4096 /* NextContinuationToken */
#define XML_MAX_DEPTH 16

/* --- URL building ------------------------------------------------------------------ */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int s3_uri_encode(char *out, size_t outlen, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (unreserved(ch) || (keep_slash && ch == '/')) {
            if (outlen - o < 2)
                return -1;
            out[o++] = (char)ch;
        } else {
            if (outlen - o < 4)
                return -1;
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (outlen - o < 1)
        return -1;
    out[o] = 0;
    return (int)o;
}

/* Appends s[0..n) percent-encoded to w. */
static void w_encoded(kc_writer *w, const char *s, size_t n, bool keep_slash)
{
    char *q = (char *)kc_w_room(w, 3 * n + 1);
    if (!q)
        return;
    int k = s3_uri_encode(q, 3 * n + 1, s, n, keep_slash);
    if (k >= 0)
        kc_w_commit(w, (size_t)k);
}

static void w_str(kc_writer *w, const char *s)
{
    kc_w_raw(w, s, strlen(s));
}

/* Turns w into a NUL-terminated heap string that the caller owns, or NULL. */
static char *w_take_string(kc_writer *w)
{
    kc_w_raw(w, "", 1);
    if (w->err) {
        kc_writer_free(w);
        return NULL;
    }
    return (char *)w->p;
}

char *s3_object_url(const char *endpoint, const char *bucket, const char *key)
{
    kc_writer w;
    kc_writer_init(&w, 16384);
    w_str(&w, endpoint);
    kc_w_raw(&w, "/", 1);
    w_encoded(&w, bucket, strlen(bucket), false);
    kc_w_raw(&w, "/", 1);
    w_encoded(&w, key, strlen(key), true);
    return w_take_string(&w);
}

char *s3_list_url(const char *endpoint, const char *bucket, const char *prefix,
                  const char *continuation, int max_keys)
{
    char num[16];
    kc_writer w;
    kc_writer_init(&w, 65536);
    w_str(&w, endpoint);
    kc_w_raw(&w, "/", 1);
    w_encoded(&w, bucket, strlen(bucket), false);
    /* Keys in byte order, as SigV4's canonical query wants them. */
    kc_w_raw(&w, "?", 1);
    if (continuation && *continuation) {
        w_str(&w, "continuation-token=");
        w_encoded(&w, continuation, strlen(continuation), false);
        kc_w_raw(&w, "&", 1);
    }
    w_str(&w, "list-type=2&max-keys=");
    snprintf(num, sizeof num, "%d", max_keys);
    w_str(&w, num);
    if (prefix && *prefix) {
        w_str(&w, "&prefix=");
        w_encoded(&w, prefix, strlen(prefix), false);
    }
    return w_take_string(&w);
}

int s3_parse_uri(const char *uri, char *bucket, size_t blen, char *prefix, size_t plen)
{
    if (!uri || strncasecmp(uri, "s3://", 5) != 0)
        return -1;
    const char *b = uri + 5, *slash = strchr(b, '/');
    size_t bn = slash ? (size_t)(slash - b) : strlen(b);
    const char *p = slash ? slash + 1 : "";
    size_t pn = strlen(p);
    if (bn == 0 || bn > 255 || bn >= blen || pn > S3_MAX_KEY_LEN || pn >= plen)
        return -1;
    for (size_t i = 0; i < bn; i++) {
        unsigned char ch = (unsigned char)b[i];
        if (!(unreserved(ch) && ch != '~'))
            return -1;
    }
    memcpy(bucket, b, bn);
    bucket[bn] = 0;
    memcpy(prefix, p, pn);
    prefix[pn] = 0;
    return 0;
}

/* --- a small XML scanner ----------------------------------------------------------- */

/* S3's responses are flat: a root, its children, and their leaf children. The scanner
 * walks the document once with an explicit stack (no recursion) and reports each
 * element's open and close with its path and raw content; visitors pick what they need.
 * It does not expand DTDs and refuses an internal subset. */
struct xml_name {
    const char *p;
    size_t n;
};

struct xml_ev {
    bool open;
    int depth;                   /* 1 for the root */
    const struct xml_name *path; /* path[0..depth) */
    const char *raw;             /* close: the element's content, undecoded */
    size_t rawlen;
};

typedef int xml_visit_fn(void *arg, const struct xml_ev *ev);

/* True when name's local part (after any "prefix:") is s. */
static bool xml_is(struct xml_name name, const char *s)
{
    const char *colon = memchr(name.p, ':', name.n);
    if (colon) {
        name.n -= (size_t)(colon + 1 - name.p);
        name.p = colon + 1;
    }
    size_t sn = strlen(s);
    return name.n == sn && memcmp(name.p, s, sn) == 0;
}

static bool xml_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool xml_namech(char ch)
{
    return ch && !xml_space(ch) && ch != '>' && ch != '/' && ch != '<' && ch != '=' && ch != '"' &&
           ch != '\'';
}

/* Returns the offset just past the first occurrence of end at or after i, or 0. */
static size_t xml_skip_past(const char *s, size_t n, size_t i, const char *end)
{
    size_t el = strlen(end);
    const char *q = memmem(s + i, n - i, end, el);
    return q ? (size_t)(q - s) + el : 0;
}

/* Parses the tag at s[i] == '<' (not a comment, PI, CDATA or declaration). Fills name,
 * *close and *empty, and returns the offset past '>', or 0 when malformed. */
static size_t xml_tag(const char *s, size_t n, size_t i, struct xml_name *name, bool *close,
                      bool *empty)
{
    size_t j = i + 1;
    *close = j < n && s[j] == '/';
    j += *close;
    size_t start = j;
    while (j < n && xml_namech(s[j]))
        j++;
    if (j == start)
        return 0;
    *name = (struct xml_name){s + start, j - start};
    char quote = 0;
    for (; j < n; j++) {
        char ch = s[j];
        if (quote) {
            quote = ch == quote ? 0 : quote;
        } else if (ch == '"' || ch == '\'') {
            if (*close)
                return 0;
            quote = ch;
        } else if (ch == '<') {
            return 0;
        } else if (ch == '>') {
            *empty = !*close && s[j - 1] == '/';
            return j + 1;
        }
    }
    return 0;
}

#define XML_BAD SIZE_MAX

/* Skips a comment, processing instruction, CDATA section or declaration at s[i]. Returns
 * the offset past it, XML_BAD when malformed, or i itself when s[i] starts an element
 * tag. */
static size_t xml_skip_special(const char *s, size_t n, size_t i, int depth)
{
    const char *p = s + i;
    size_t rem = n - i, e = 0;
    if (rem >= 2 && p[1] == '?')
        e = xml_skip_past(s, n, i + 2, "?>");
    else if (rem >= 4 && memcmp(p, "<!--", 4) == 0)
        e = xml_skip_past(s, n, i + 4, "-->");
    else if (rem >= 9 && memcmp(p, "<![CDATA[", 9) == 0)
        e = depth > 0 ? xml_skip_past(s, n, i + 9, "]]>") : 0;
    else if (rem >= 2 && p[1] == '!')
        e = depth == 0 ? xml_skip_past(s, n, i + 2, ">") : 0;
    else
        return i;
    if (e && p[1] == '!' && p[2] != '-' && p[2] != '[' && memchr(p, '[', e - i))
        e = 0; /* a DOCTYPE with an internal subset: entity definitions we will not expand */
    return e ? e : XML_BAD;
}

static int xml_scan(const char *s, size_t n, xml_visit_fn *fn, void *arg)
{
    struct xml_name path[XML_MAX_DEPTH];
    size_t content[XML_MAX_DEPTH];
    int depth = 0;
    bool rooted = false;
    size_t i = 0;
    while (i < n) {
        if (s[i] != '<') {
            if (depth == 0 && !xml_space(s[i]))
                return -1;
            const char *lt = memchr(s + i, '<', n - i);
            if (depth == 0 && lt)
                for (const char *q = s + i; q < lt; q++)
                    if (!xml_space(*q))
                        return -1;
            i = lt ? (size_t)(lt - s) : n;
            continue;
        }
        size_t next = xml_skip_special(s, n, i, depth);
        if (next == XML_BAD)
            return -1;
        if (next != i) {
            i = next;
            continue;
        }
        struct xml_name name;
        bool close = false, empty = false;
        next = xml_tag(s, n, i, &name, &close, &empty);
        if (next == 0)
            return -1;
        if (close) {
            if (depth == 0 || name.n != path[depth - 1].n ||
                memcmp(name.p, path[depth - 1].p, name.n) != 0)
                return -1;
            struct xml_ev ev = {false, depth, path, s + content[depth - 1], i - content[depth - 1]};
            if (fn(arg, &ev) < 0)
                return -1;
            depth--;
        } else {
            if ((depth == 0 && rooted) || depth == XML_MAX_DEPTH)
                return -1;
            rooted = true;
            path[depth] = name;
            content[depth] = next;
            depth++;
            struct xml_ev ev = {true, depth, path, NULL, 0};
            if (fn(arg, &ev) < 0)
                return -1;
            if (empty) {
                ev = (struct xml_ev){false, depth, path, s + next, 0};
                if (fn(arg, &ev) < 0)
                    return -1;
                depth--;
            }
        }
        i = next;
    }
    return rooted && depth == 0 ? 0 : -1;
}

/* Writes code point cp as UTF-8 to out. Returns the byte count, or 0 for a code point
 * that XML text may not hold (NUL, surrogates, beyond U+10FFFF). */
static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the entity at s[0..n) (s[0] == '&') into out[4]. Returns the entity's length
 * in s and sets *outn, or 0 when it is unknown or malformed. */
static size_t xml_entity(const char *s, size_t n, char *out, size_t *outn)
{
    static const struct {
        const char *name;
        char ch;
    } named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t el = strlen(named[k].name);
        if (n >= el && memcmp(s, named[k].name, el) == 0) {
            out[0] = named[k].ch;
            *outn = 1;
            return el;
        }
    }
    if (n < 4 || s[1] != '#')
        return 0;
    bool hexa = s[2] == 'x';
    size_t j = hexa ? 3 : 2, start = j;
    uint32_t cp = 0;
    for (; j < n && j - start < 8 && s[j] != ';'; j++) {
        char ch = s[j];
        int d = ch >= '0' && ch <= '9'           ? ch - '0'
                : hexa && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : hexa && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                 : -1;
        if (d < 0)
            return 0;
        cp = cp * (hexa ? 16 : 10) + (uint32_t)d;
    }
    if (j == start || j >= n || s[j] != ';')
        return 0;
    *outn = utf8_put(cp, out);
    return *outn ? j + 1 : 0;
}

/* Decodes element text (entities, CDATA) into out, NUL-terminated. Returns the decoded
 * length; -1 when malformed (markup inside, a NUL, a bad entity); -2 when it does not
 * fit, with out holding as much as fitted. */
static int xml_text(const char *s, size_t n, char *out, size_t outcap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char buf[4];
        const char *src = buf;
        size_t len = 1, used = 1;
        if (s[i] == '&') {
            used = xml_entity(s + i, n - i, buf, &len);
            if (used == 0)
                return -1;
        } else if (s[i] == '<') {
            if (n - i < 12 || memcmp(s + i, "<![CDATA[", 9) != 0)
                return -1;
            const char *end = memmem(s + i + 9, n - i - 9, "]]>", 3);
            if (!end)
                return -1;
            src = s + i + 9;
            len = (size_t)(end - src);
            used = len + 12;
            if (memchr(src, 0, len))
                return -1;
        } else if (s[i] == 0) {
            return -1;
        } else {
            src = s + i;
        }
        if (len >= outcap - o) {
            memcpy(out + o, src, outcap - o - 1);
            out[outcap - 1] = 0;
            return -2;
        }
        memcpy(out + o, src, len);
        o += len;
        i += used;
    }
    out[o] = 0;
    return (int)o;
}

int64_t s3_parse_i64(const char *s, size_t n)
{
    int64_t v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int s3_etag_copy(char *out, size_t outcap, const char *s, size_t n)
{
    if (n >= 2 && s[0] == 'W' && s[1] == '/')
        s += 2, n -= 2;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        s++, n -= 2;
    if (n >= outcap)
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

struct list_ctx {
    struct s3_list_page *page;
    size_t cap;
    bool in_entry; /* objects[page->n] is initialised and owns its key */
    bool have_key, have_size;
};

/* Starts a new <Contents> entry, growing the array by doubling up to the cap. */
static int list_open_contents(struct list_ctx *x)
{
    struct s3_list_page *pg = x->page;
    if (pg->n >= S3_MAX_LIST_OBJECTS)
        return -1;
    if (pg->n == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        struct s3_object *o = realloc(pg->objects, ncap * sizeof *o);
        if (!o)
            return -1;
        pg->objects = o;
        x->cap = ncap;
    }
    pg->objects[pg->n] = (struct s3_object){.key = NULL, .size = -1};
    x->in_entry = true;
    x->have_key = x->have_size = false;
    return 0;
}

/* A leaf of <Contents>: Key, Size, ETag (others, like StorageClass, are ignored). */
static int list_contents_field(struct list_ctx *x, const struct xml_ev *ev)
{
    struct s3_object *o = &x->page->objects[x->page->n];
    struct xml_name f = ev->path[2];
    char buf[S3_MAX_KEY_LEN + 1];
    if (xml_is(f, "Key")) {
        int k = xml_text(ev->raw, ev->rawlen, buf, sizeof buf);
        if (k <= 0 || x->have_key || !(o->key = strdup(buf)))
            return -1;
        x->have_key = true;
    } else if (xml_is(f, "Size")) {
        int k = xml_text(ev->raw, ev->rawlen, buf, 32);
        if (k <= 0 || x->have_size || (o->size = s3_parse_i64(buf, (size_t)k)) < 0)
            return -1;
        x->have_size = true;
    } else if (xml_is(f, "ETag")) {
        int k = xml_text(ev->raw, ev->rawlen, buf, sizeof buf);
        if (k < 0 || s3_etag_copy(o->etag, sizeof o->etag, buf, (size_t)k) < 0)
            return -1;
    }
    return 0;
}

/* A child of <ListBucketResult> closing. */
static int list_top_field(struct list_ctx *x, const struct xml_ev *ev)
{
    struct s3_list_page *pg = x->page;
    struct xml_name f = ev->path[1];
    char buf[S3_MAX_TOKEN + 1];
    if (xml_is(f, "Contents")) {
        if (!x->have_key || !x->have_size)
            return -1;
        x->in_entry = false;
        pg->n++;
    } else if (xml_is(f, "IsTruncated")) {
        int k = xml_text(ev->raw, ev->rawlen, buf, 16);
        if (k == 4 && memcmp(buf, "true", 4) == 0)
            pg->truncated = true;
        else if (k == 5 && memcmp(buf, "false", 5) == 0)
            pg->truncated = false;
        else
            return -1;
    } else if (xml_is(f, "NextContinuationToken")) {
        int k = xml_text(ev->raw, ev->rawlen, buf, sizeof buf);
        if (k < 0 || pg->next_token)
            return -1;
        if (k > 0 && !(pg->next_token = strdup(buf)))
            return -1;
    }
    return 0;
}

static int list_visit(void *arg, const struct xml_ev *ev)
{
    struct list_ctx *x = arg;
    if (ev->depth == 1)
        return ev->open && !xml_is(ev->path[0], "ListBucketResult") ? -1 : 0;
    bool in_contents = xml_is(ev->path[1], "Contents");
    if (ev->depth == 2 && in_contents && ev->open)
        return list_open_contents(x);
    if (ev->depth == 2 && !ev->open)
        return list_top_field(x, ev);
    if (ev->depth == 3 && in_contents && !ev->open)
        return list_contents_field(x, ev);
    return 0;
}

void s3_list_page_free(struct s3_list_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++)
        free(page->objects[i].key);
    free(page->objects);
    free((char *)page->next_token);
    page->objects = NULL;
    page->n = 0;
    page->next_token = NULL;
}

int s3_parse_list(const char *xml, size_t len, struct s3_list_page *page)
{
    memset(page, 0, sizeof *page);
    if (len > S3_MAX_LIST_BODY)
        return -1;
    struct list_ctx x = {.page = page};
    if (xml_scan(xml, len, list_visit, &x) < 0) {
        if (x.in_entry)
            free(page->objects[page->n].key); /* the entry that was being parsed */
        s3_list_page_free(page);
        return -1;
    }
    return 0;
}

struct err_ctx {
    char code[128];
    char msg[512];
};

static int err_visit(void *arg, const struct xml_ev *ev)
{
    struct err_ctx *x = arg;
    if (ev->depth == 1)
        return ev->open && !xml_is(ev->path[0], "Error") ? -1 : 0;
    if (ev->depth != 2 || ev->open)
        return 0;
    if (xml_is(ev->path[1], "Code"))
        return xml_text(ev->raw, ev->rawlen, x->code, sizeof x->code) == -1 ? -1 : 0;
    if (xml_is(ev->path[1], "Message"))
        return xml_text(ev->raw, ev->rawlen, x->msg, sizeof x->msg) == -1 ? -1 : 0;
    return 0;
}

int s3_parse_error(const char *xml, size_t len, char *out, size_t outlen)
{
    struct err_ctx x = {{0}, {0}};
    if (outlen == 0 || xml_scan(xml, len, err_visit, &x) < 0 || (!x.code[0] && !x.msg[0]))
        return -1;
    snprintf(out, outlen, "%s%s%s", x.code, x.code[0] && x.msg[0] ? ": " : "", x.msg);
    return 0;
}
