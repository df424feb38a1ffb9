/* fuzz_batch.c: libFuzzer target for the record batch checks. batch_validate() runs on
 * the input as given, then on a copy whose CRC32C field is recomputed, so mutations
 * reach the record parser instead of stopping at the checksum. batch_offset_for_time()
 * (whose contract is a stored, hence validated, batch) runs on batches that pass. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "crc32c.h"
#include "kcodec.h"

/* Validates the len bytes at p and, if they pass, looks up a few timestamps. */
static void fz_batch(const uint8_t *p, size_t len, int64_t ts)
{
    struct batch_hdr h;
    int64_t found = 0;

    if (batch_validate(p, len, &h) != BATCH_OK)
        return;
    batch_offset_for_time(p, len, h.first_timestamp, &found);
    batch_offset_for_time(p, len, h.max_timestamp, &found);
    batch_offset_for_time(p, len, ts, &found);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ts = 0;

    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    if (size > BATCH_OFF_FIRST_TS + 8)
        memcpy(&ts, data + BATCH_OFF_FIRST_TS, 8);
    ts ^= (int64_t)size; /* a timestamp near, but not always at, the batch's own */
    fz_batch(p, size, ts);
    if (size >= BATCH_OFF_ATTRIBUTES) {
        kc_put_be32(p + BATCH_OFF_CRC,
                    crc32c(0, p + BATCH_OFF_ATTRIBUTES, size - BATCH_OFF_ATTRIBUTES));
        fz_batch(p, size, ts);
    }
    free(p);
    return 0;
}
