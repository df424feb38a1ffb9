/* kapi_share.h: the KIP-932 share-group APIs (door 1 of the shared subscription):
 * parked ShareFetch requests, and the GROUP config resource that IncrementalAlterConfigs
 * and DescribeConfigs reach through kapi_admin.c. The handlers are in kafka.h. */
#ifndef SLUICE_KAPI_SHARE_H
#define SLUICE_KAPI_SHARE_H

#include "kcodec.h"
#include "topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct partition;
struct share_fetcher;

/* Parked ShareFetch requests: one waits for records on its session's partitions or for
 * max_wait_ms, without blocking the loop. */
struct share_fetcher *share_fetcher_new(struct broker *b);
void share_fetcher_free(struct share_fetcher *f);
/* Answers every parked share fetch now (shutdown). */
void share_fetcher_release_all(struct share_fetcher *f);
/* Records may be available on p (an append, a release, a lock expiry): parked share
 * fetches on it look again before the loop sleeps. Called from fetch_wake_partition. */
void share_fetch_wake(struct broker *b, const struct partition *p);

/* IncrementalAlterConfigs on GROUP resource group: validates every change, then applies
 * them all (or, with validate_only, none). Returns a Kafka error code, with msg set. */
int16_t kapi_share_group_cfg_alter(struct broker *b, kc_str group,
                                   const struct topic_cfg_change *ch, int n, bool validate_only,
                                   char *msg, size_t msglen);
/* DescribeConfigs on GROUP resource group: calls fn for every share-group config (the
 * defaults when the group has none of its own). */
void kapi_share_group_cfg_describe(struct broker *b, kc_str group, topic_config_fn *fn, void *arg);

#endif
