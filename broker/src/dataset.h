/* dataset.h: dataset topics, an S3 prefix served as a read-only topic. A topic is a
 * dataset when its config has source.uri; the rest of its source.* configs say where
 * and how (endpoint, region, format, credentials). This module lists the prefix
 * (ListObjectsV2, async), keeps the stable object index in the store, and answers
 * reads through the block cache (cache.h) with per-reader prefetch. The offset scheme
 * is in dataset_format.h. Everything runs on the event loop. */
#ifndef SLUICE_DATASET_H
#define SLUICE_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct topic;
struct partition;
struct kc_writer;
struct cJSON;
struct topic_cfg_change;

struct datasets;

/* Creates the registry and the block cache (cache.* broker configs). NULL on failure. */
struct datasets *datasets_new(struct broker *b);
/* Stops every S3 client, then frees the cache and every dataset. NULL is a no-op. */
void datasets_free(struct datasets *d);

/* Whether t is a dataset topic (has source.uri). */
bool dataset_is_topic(const struct topic *t);

/* Checks the source.* configs of a topic being created as a whole (uri shape, format,
 * no source.* without source.uri). Returns a Kafka error code, with msg set. */
int dataset_validate(const struct topic_cfg_change *cfg, int n, char *msg, size_t msglen);

/* Hooks from the topic registry: a dataset topic was created (starts the scan), is
 * being deleted (drops its index and cached blocks), or one of its partitions was made
 * resident (sets its high watermark from the index). */
void dataset_topic_created(struct broker *b, struct topic *t);
void dataset_topic_deleted(struct broker *b, const struct topic *t);
void dataset_partition_init(struct broker *b, struct partition *p);

/* plog_read for a dataset partition: writes record batches for offset onwards into w,
 * up to max_bytes (at least one batch when must_return_one and one is ready). What is
 * not cached yet is loaded and the partition's parked fetches are woken when it lands,
 * so it may copy nothing. Returns a Kafka error code. */
int dataset_read(struct broker *b, struct partition *p, int64_t offset, int64_t max_bytes,
                 bool must_return_one, struct kc_writer *w, int64_t *copied);

/* {"state","error","objects","bytes",...} for GET /v1/topics/{name}; NULL on OOM. */
struct cJSON *dataset_status_json(struct broker *b, struct topic *t);
/* Serves POST rescan, POST/GET warm and GET cache on t. body may be NULL. Returns the
 * HTTP status; *out is the JSON to send (on error: msg and *code are set instead). */
int dataset_admin(struct broker *b, struct topic *t, const char *action, const char *method,
                  const struct cJSON *body, struct cJSON **out, const char **code, char *msg,
                  size_t msglen);
/* Appends the dataset and cache figures to a Prometheus exposition. */
void dataset_metrics(struct broker *b, struct kc_writer *w);

#endif
