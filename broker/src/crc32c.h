/* crc32c.h: CRC-32C (Castagnoli), as used by Kafka record batches. Uses the SSE4.2
 * instruction when the CPU has it, a slicing table otherwise. */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes and returns the new value. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table path, same result as crc32c(); exposed so tests can compare. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
