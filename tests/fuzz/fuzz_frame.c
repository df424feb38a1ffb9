/* fuzz_frame.c: libFuzzer target for the request decoder. The input is one request
 * frame (without its 4-byte size prefix), handed to kafka_handle() on a scratch broker
 * exactly as a connection would, in a heap buffer of its exact size so ASan sees any
 * read past the end. The broker is built once and persists across inputs, so state
 * (topics, produced records, groups) accumulates as it would on a live connection. */
#include "../unit/unit_broker.h"

#include "conn.h"

static struct ub *fz;
static struct conn fz_conn;

/* Removes the scratch directory when libFuzzer exits at the end of its run. */
static void fz_cleanup(void)
{
    ub_rmdir(fz->dir);
}

/* Builds the broker once: the default configuration on a scratch dir, one topic. */
static void fz_init(void)
{
    fz = calloc(1, sizeof *fz);
    if (!fz)
        abort();
    ub_init(fz);
    log_min_level = LOG_ERROR + 1; /* malformed frames are expected: keep the log quiet */
    fz_conn.fd = -1;
    fz_conn.b = &fz->b;
    snprintf(fz_conn.peer, sizeof fz_conn.peer, "fuzz:1");
    ub_topic(fz, "t", 2);
    atexit(fz_cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kslot s;

    if (!fz)
        fz_init();
    uint8_t *frame = malloc(size ? size : 1);
    if (!frame)
        return 0;
    memcpy(frame, data, size);
    memset(&s, 0, sizeof s);
    s.conn = &fz_conn;
    kc_writer_init(&s.w, 0);
    int rc = kafka_handle(&fz->b, &fz_conn, &s, frame, size);
    if (rc == KAPI_DEFER && s.cancel)
        s.cancel(&s);
    kc_writer_free(&s.w);
    free(frame);
    return 0;
}
