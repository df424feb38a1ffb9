/* metrics.h: broker counters and latency histograms, rendered as Prometheus text.
 * Updated only on the event loop thread, so plain integers suffice. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "kcodec.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* One Kafka request of api_key finished after dur_us (from frame complete to response
 * ready). */
void metrics_request(struct metrics *m, int16_t api_key, int64_t dur_us);
/* One malformed or rejected frame (closed connection). */
void metrics_bad_frame(struct metrics *m);
void metrics_conn_open(struct metrics *m);
void metrics_conn_close(struct metrics *m);
void metrics_conn_refused(struct metrics *m);
/* mech: "ssl" (client certificate), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". */
void metrics_auth(struct metrics *m, const char *mech, bool ok);
void metrics_denied(struct metrics *m);
/* A request throttled by a quota (kind: QUOTA_PRODUCE or QUOTA_FETCH) for ms. */
void metrics_throttled(struct metrics *m, int kind, int32_t ms);
/* One group-commit fdatasync of the write-ahead log took dur_us. */
void metrics_wal_sync(struct metrics *m, int64_t dur_us);
/* HTTP admin request with its status code. */
void metrics_http(struct metrics *m, int status);

/* Appends the whole Prometheus exposition to w. */
void metrics_render(struct metrics *m, struct broker *b, kc_writer *w);

#endif
