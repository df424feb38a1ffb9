/* ctl_lines.h: a bounded line splitter for newline-delimited JSON watch streams. Bytes
 * arrive in arbitrary chunks; each complete line is handed to a callback. A line longer
 * than the limit is skipped up to its newline and counted, never buffered whole. */
#ifndef CTL_LINES_H
#define CTL_LINES_H

#include <stdbool.h>
#include <stddef.h>

/* Called with one line (no '\n', not NUL-terminated). Returns 0 to go on, -1 to stop. */
typedef int ctl_line_fn(void *arg, const char *line, size_t len);

struct ctl_linebuf {
    char *buf;
    size_t len, cap;
    size_t max;       /* the longest line accepted */
    bool skipping;    /* inside an oversize line, dropping until '\n' */
    unsigned long oversize; /* lines dropped for length */
};

void ctl_linebuf_init(struct ctl_linebuf *lb, size_t max);
void ctl_linebuf_reset(struct ctl_linebuf *lb);
void ctl_linebuf_free(struct ctl_linebuf *lb);
/* Feeds data[0..n). Returns 0, -1 when fn stopped the stream, -2 on OOM. */
int ctl_linebuf_feed(struct ctl_linebuf *lb, const char *data, size_t n, ctl_line_fn *fn,
                     void *arg);

#endif
