/* ctl_util.h: logging, clocks, hashing and small string helpers shared by the
 * controller's modules. */
#ifndef CTL_UTIL_H
#define CTL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum ctl_log_level { CTL_LOG_DEBUG, CTL_LOG_INFO, CTL_LOG_WARN, CTL_LOG_ERROR };

extern int ctl_log_min; /* configuration: the lowest level printed */

void ctl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ctl_debug(...) ctl_log(CTL_LOG_DEBUG, __VA_ARGS__)
#define ctl_info(...) ctl_log(CTL_LOG_INFO, __VA_ARGS__)
#define ctl_warn(...) ctl_log(CTL_LOG_WARN, __VA_ARGS__)
#define ctl_error(...) ctl_log(CTL_LOG_ERROR, __VA_ARGS__)

/* Milliseconds on the monotonic clock. */
int64_t ctl_now_ms(void);
/* Writes the current UTC time as RFC 3339 ("2024-01-02T03:04:05Z") into buf (>= 21). */
void ctl_rfc3339(char *buf, size_t cap);
/* Same, with microseconds ("...05.123456Z"), for Lease times; buf >= 28. */
void ctl_rfc3339_micro(char *buf, size_t cap);
/* Parses RFC 3339 to seconds since the epoch; -1 when it does not parse. */
int64_t ctl_parse_rfc3339(const char *s);

/* FNV-1a over s[0..len). */
uint64_t ctl_hash(const char *s, size_t len);
/* A uniformly random 64-bit value (not for secrets). */
uint64_t ctl_rand64(void);
/* Fills out (cap >= n + 1) with n random alphanumeric characters from the OS RNG. Returns
 * 0, or -1 when no randomness could be had. */
int ctl_random_token(char *out, size_t n);

/* strdup of s[0..len); NULL on OOM. */
char *ctl_strndup(const char *s, size_t len);
/* Formats into a fresh heap string; NULL on OOM. */
char *ctl_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole small file (at most cap bytes) into a fresh NUL-terminated buffer.
 * Returns NULL when it cannot be read or is larger than cap. *len gets its size. */
char *ctl_read_file(const char *path, size_t cap, size_t *len);
/* Base64-encodes src[0..len) into a fresh string; NULL on OOM. */
char *ctl_b64_encode(const unsigned char *src, size_t len);
/* Decodes base64 (whitespace ignored) into a fresh buffer; NULL when invalid. */
unsigned char *ctl_b64_decode(const char *src, size_t len, size_t *out_len);

#endif
