/* ctl_labels.c: label selector parsing and matching, with fixed limits on the number of
 * requirements and values. */
#include "ctl_labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"

void ctl_selector_free(struct ctl_selector *sel)
{
    for (int i = 0; i < sel->n; i++) {
        free(sel->reqs[i].key);
        for (int k = 0; k < sel->reqs[i].nvalues; k++)
            free(sel->reqs[i].values[k]);
        free(sel->reqs[i].values);
    }
    sel->n = 0;
}

/* A label key or value character: alphanumerics, '-', '_', '.', and '/' in keys. */
static bool sel_char(char c, bool key)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || (key && c == '/');
}

struct sel_lex {
    const char *s;
    size_t len, off;
    char *err;
    size_t errcap;
};

static void lx_space(struct sel_lex *x)
{
    while (x->off < x->len && (x->s[x->off] == ' ' || x->s[x->off] == '\t'))
        x->off++;
}

/* Reads a key or value token; returns a fresh string or NULL (empty allowed for values). */
static char *lx_word(struct sel_lex *x, bool key)
{
    lx_space(x);
    size_t st = x->off;
    while (x->off < x->len && sel_char(x->s[x->off], key))
        x->off++;
    if (key && x->off == st) {
        snprintf(x->err, x->errcap, "expected a label key at offset %zu", st);
        return NULL;
    }
    if (x->off - st > 316) {
        snprintf(x->err, x->errcap, "label key or value too long at offset %zu", st);
        return NULL;
    }
    char *w = ctl_strndup(x->s + st, x->off - st);
    if (!w)
        snprintf(x->err, x->errcap, "out of memory");
    return w;
}

static bool lx_lit(struct sel_lex *x, const char *lit)
{
    size_t n = strlen(lit);
    lx_space(x);
    if (x->len - x->off >= n && !memcmp(x->s + x->off, lit, n)) {
        x->off += n;
        return true;
    }
    return false;
}

static int req_add_value(struct ctl_sel_req *r, char *v, struct sel_lex *x)
{
    if (r->nvalues >= CTL_SEL_MAX_VALUES) {
        free(v);
        snprintf(x->err, x->errcap, "more than %d values in a set", CTL_SEL_MAX_VALUES);
        return -1;
    }
    char **nv = realloc(r->values, sizeof *nv * (size_t)(r->nvalues + 1));
    if (!nv) {
        free(v);
        snprintf(x->err, x->errcap, "out of memory");
        return -1;
    }
    r->values = nv;
    r->values[r->nvalues++] = v;
    return 0;
}

/* Reads "(a, b, c)" into r. */
static int lx_set(struct sel_lex *x, struct ctl_sel_req *r)
{
    if (!lx_lit(x, "(")) {
        snprintf(x->err, x->errcap, "expected '(' at offset %zu", x->off);
        return -1;
    }
    for (;;) {
        char *v = lx_word(x, false);
        if (!v || req_add_value(r, v, x) < 0)
            return -1;
        if (lx_lit(x, ")"))
            return 0;
        if (!lx_lit(x, ",")) {
            snprintf(x->err, x->errcap, "expected ',' or ')' at offset %zu", x->off);
            return -1;
        }
    }
}

/* Reads the operator and values of one requirement whose key is already in r. */
static int lx_op(struct sel_lex *x, struct ctl_sel_req *r)
{
    lx_space(x);
    size_t save = x->off;
    if (lx_lit(x, "!=") || lx_lit(x, "==") || lx_lit(x, "=")) {
        r->op = x->s[save] == '!' ? CTL_SEL_NE : CTL_SEL_EQ;
        char *v = lx_word(x, false);
        return v ? req_add_value(r, v, x) : -1;
    }
    if (lx_lit(x, "notin ") || lx_lit(x, "notin(")) {
        if (x->s[x->off - 1] == '(')
            x->off--;
        r->op = CTL_SEL_NOTIN;
        return lx_set(x, r);
    }
    if (lx_lit(x, "in ") || lx_lit(x, "in(")) {
        if (x->s[x->off - 1] == '(')
            x->off--;
        r->op = CTL_SEL_IN;
        return lx_set(x, r);
    }
    r->op = CTL_SEL_EXISTS;
    return 0;
}

int ctl_selector_parse(struct ctl_selector *sel, const char *s, size_t len, char *err,
                       size_t errcap)
{
    struct sel_lex x = {.s = s, .len = len, .err = err, .errcap = errcap};
    memset(sel, 0, sizeof *sel);
    if (len > CTL_SEL_MAX_LEN) {
        snprintf(err, errcap, "selector longer than %d bytes", CTL_SEL_MAX_LEN);
        return -1;
    }
    lx_space(&x);
    if (x.off == len)
        return 0;
    for (;;) {
        if (sel->n >= CTL_SEL_MAX_REQS) {
            snprintf(err, errcap, "more than %d requirements", CTL_SEL_MAX_REQS);
            goto fail;
        }
        struct ctl_sel_req *r = &sel->reqs[sel->n];
        memset(r, 0, sizeof *r);
        bool neg = lx_lit(&x, "!");
        r->key = lx_word(&x, true);
        sel->n++;
        if (!r->key)
            goto fail;
        if (neg)
            r->op = CTL_SEL_NOTEXISTS;
        else if (lx_op(&x, r) < 0)
            goto fail;
        lx_space(&x);
        if (x.off == len)
            return 0;
        if (!lx_lit(&x, ",")) {
            snprintf(err, errcap, "unexpected '%c' at offset %zu", s[x.off], x.off);
            goto fail;
        }
    }
fail:
    ctl_selector_free(sel);
    return -1;
}

/* Adds one matchExpressions entry {key, operator, values}. */
static int sel_expr(struct ctl_selector *sel, const cJSON *e, char *err, size_t errcap)
{
    static const struct {
        const char *name;
        enum ctl_sel_op op;
    } ops[] = {{"In", CTL_SEL_IN}, {"NotIn", CTL_SEL_NOTIN}, {"Exists", CTL_SEL_EXISTS},
               {"DoesNotExist", CTL_SEL_NOTEXISTS}};
    struct sel_lex x = {.err = err, .errcap = errcap};
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "operator");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(e, "values"), *v;
    size_t i = 0;
    if (!cJSON_IsString(k) || !cJSON_IsString(o)) {
        snprintf(err, errcap, "matchExpressions entries need key and operator");
        return -1;
    }
    while (i < 4 && strcmp(ops[i].name, o->valuestring))
        i++;
    if (i == 4) {
        snprintf(err, errcap, "unknown operator %.64s", o->valuestring);
        return -1;
    }
    struct ctl_sel_req *r = &sel->reqs[sel->n];
    memset(r, 0, sizeof *r);
    r->op = ops[i].op;
    r->key = strdup(k->valuestring);
    sel->n++;
    if (!r->key)
        return -1;
    cJSON_ArrayForEach(v, vs)
    {
        char *dup = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
        if (!dup || req_add_value(r, dup, &x) < 0)
            return -1;
    }
    if ((r->op == CTL_SEL_IN || r->op == CTL_SEL_NOTIN) && r->nvalues == 0) {
        snprintf(err, errcap, "%s needs values", o->valuestring);
        return -1;
    }
    return 0;
}

int ctl_selector_from_json(struct ctl_selector *sel, const cJSON *j, char *err, size_t errcap)
{
    memset(sel, 0, sizeof *sel);
    if (cJSON_IsString(j))
        return ctl_selector_parse(sel, j->valuestring, strlen(j->valuestring), err, errcap);
    if (!cJSON_IsObject(j)) {
        snprintf(err, errcap, "selector must be a string or a LabelSelector object");
        return -1;
    }
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(j, "matchLabels");
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(j, "matchExpressions"), *it;
    int total = cJSON_GetArraySize(ml) + cJSON_GetArraySize(me);
    if (total > CTL_SEL_MAX_REQS) {
        snprintf(err, errcap, "more than %d requirements", CTL_SEL_MAX_REQS);
        return -1;
    }
    cJSON_ArrayForEach(it, ml)
    {
        struct ctl_sel_req *r = &sel->reqs[sel->n];
        struct sel_lex x = {.err = err, .errcap = errcap};
        memset(r, 0, sizeof *r);
        r->op = CTL_SEL_EQ;
        r->key = strdup(it->string);
        sel->n++;
        char *v = cJSON_IsString(it) ? strdup(it->valuestring) : NULL;
        if (!r->key || !v || req_add_value(r, v, &x) < 0) {
            if (!v)
                snprintf(err, errcap, "matchLabels values must be strings");
            goto fail;
        }
    }
    cJSON_ArrayForEach(it, me)
    {
        if (sel_expr(sel, it, err, errcap) < 0)
            goto fail;
    }
    return 0;
fail:
    ctl_selector_free(sel);
    return -1;
}

static bool req_has(const struct ctl_sel_req *r, const char *v)
{
    for (int i = 0; i < r->nvalues; i++)
        if (!strcmp(r->values[i], v))
            return true;
    return false;
}

bool ctl_selector_matches(const struct ctl_selector *sel, const cJSON *labels)
{
    for (int i = 0; i < sel->n; i++) {
        const struct ctl_sel_req *r = &sel->reqs[i];
        const cJSON *l = labels ? cJSON_GetObjectItemCaseSensitive(labels, r->key) : NULL;
        const char *v = cJSON_IsString(l) ? l->valuestring : NULL;
        bool ok;
        switch (r->op) {
        case CTL_SEL_EQ: ok = v && !strcmp(v, r->values[0]); break;
        case CTL_SEL_NE: ok = !v || strcmp(v, r->values[0]); break;
        case CTL_SEL_IN: ok = v && req_has(r, v); break;
        case CTL_SEL_NOTIN: ok = !v || !req_has(r, v); break;
        case CTL_SEL_EXISTS: ok = v != NULL; break;
        default: ok = v == NULL; break;
        }
        if (!ok)
            return false;
    }
    return true;
}
