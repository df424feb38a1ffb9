/* ctl_lines.c: the bounded line splitter for watch streams. */
#include "ctl_lines.h"

#include <stdlib.h>
#include <string.h>

void ctl_linebuf_init(struct ctl_linebuf *lb, size_t max)
{
    memset(lb, 0, sizeof *lb);
    lb->max = max;
}

void ctl_linebuf_reset(struct ctl_linebuf *lb)
{
    lb->len = 0;
    lb->skipping = false;
}

void ctl_linebuf_free(struct ctl_linebuf *lb)
{
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

/* Appends data to the partial line, growing the buffer up to max. Returns 0, -2 on OOM,
 * or 1 when the line went over max (the partial line is dropped). */
static int lb_append(struct ctl_linebuf *lb, const char *data, size_t n)
{
    if (n > lb->max - lb->len) {
        lb->len = 0;
        lb->skipping = true;
        lb->oversize++;
        return 1;
    }
    if (lb->len + n > lb->cap) {
        size_t nc = lb->cap ? lb->cap : 4096;
        while (nc < lb->len + n)
            nc *= 2;
        if (nc > lb->max)
            nc = lb->max;
        char *nb = realloc(lb->buf, nc);
        if (!nb)
            return -2;
        lb->buf = nb;
        lb->cap = nc;
    }
    memcpy(lb->buf + lb->len, data, n);
    lb->len += n;
    return 0;
}

static int lb_emit(ctl_line_fn *fn, void *arg, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (!len)
        return 0; /* keep-alive blank lines */
    return fn(arg, line, len) < 0 ? -1 : 0;
}

int ctl_linebuf_feed(struct ctl_linebuf *lb, const char *data, size_t n, ctl_line_fn *fn,
                     void *arg)
{
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;
        if (lb->skipping) {
            if (nl)
                lb->skipping = false;
        } else if (!nl) {
            int rc = lb_append(lb, data, seg);
            if (rc < 0)
                return rc;
        } else if (lb->len == 0) {
            if (seg > lb->max)
                lb->oversize++;
            else if (lb_emit(fn, arg, data, seg) < 0)
                return -1;
        } else {
            int rc = lb_append(lb, data, seg);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                size_t l = lb->len;
                lb->len = 0;
                if (lb_emit(fn, arg, lb->buf, l) < 0)
                    return -1;
            } else
                lb->skipping = false; /* the oversize line ended here */
        }
        if (!nl)
            break;
        data += seg + 1;
        n -= seg + 1;
    }
    return 0;
}
