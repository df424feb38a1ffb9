/* fuzz_tar.c: libFuzzer target for the pure dataset readers in dataset_format.h. The
 * input is walked as a tar archive the way dataset_read.c indexes one (header, then
 * long-name or pax data, then the next member at dsf_tar_span()), and it is split into
 * lines, fed in uneven blocks whose sizes come from the input's first byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_format.h"

enum { FZ_META_MAX = 64 << 10 }; /* dataset_read.c's DS_META_MAX */

/* Walks the archive p (len bytes) member by member until its end or an error. */
static void fz_tar(const uint8_t *p, size_t len)
{
    static char name[DSF_TAR_NAME_MAX];
    uint64_t pos = 0;

    while (pos + DSF_TAR_BLOCK <= len) {
        struct dsf_tar_hdr h;
        int kind = dsf_tar_parse(p + pos, (int64_t)(len - pos - DSF_TAR_BLOCK), &h);
        if (kind == DSF_TAR_END || kind == DSF_TAR_EBAD)
            return;
        if (h.size < 0 || (uint64_t)h.size > len - pos - DSF_TAR_BLOCK)
            __builtin_trap(); /* dsf_tar_parse promised size <= max_size */
        if (kind == DSF_TAR_PAX && h.size <= FZ_META_MAX)
            dsf_pax_path(p + pos + DSF_TAR_BLOCK, (size_t)h.size, name, sizeof name);
        int64_t span = dsf_tar_span(h.size);
        if (span <= 0)
            return;
        pos += (uint64_t)span;
    }
}

static int fz_line(void *arg, uint64_t off, uint64_t len)
{
    uint64_t size = *(const uint64_t *)arg;
    if (off > size || len > size - off)
        __builtin_trap(); /* a line outside the object */
    return 0;
}

/* Splits p into lines, fed in blocks of step bytes. */
static void fz_lines(const uint8_t *p, size_t len, size_t step)
{
    struct dsf_lines s;
    uint64_t size = len;

    memset(&s, 0, sizeof s);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        dsf_lines_feed(&s, p + off, n, off, fz_line, &size);
    }
    dsf_lines_finish(&s, size, fz_line, &size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    fz_tar(p, size);
    fz_lines(p, size, size ? (size_t)(data[0] % 61) + 1 : 1);
    fz_lines(p, size, size ? size : 1);
    free(p);
    return 0;
}
