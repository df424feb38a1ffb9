/* retention.h: time- and size-based retention. A timer on the loop snapshots the loaded
 * partitions; a worker thread finds where each log should start; the loop then deletes
 * the prefix. The scan never runs on the loop. */
#ifndef SLUICE_RETENTION_H
#define SLUICE_RETENTION_H

struct broker;
struct retention;

struct retention *retention_new(struct broker *b);
void retention_free(struct retention *r);

#endif
