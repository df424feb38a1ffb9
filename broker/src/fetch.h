/* fetch.h: parked Fetch requests. A Fetch that finds fewer than min_bytes waits for
 * data on its partitions or for max_wait_ms, without blocking the loop. */
#ifndef SLUICE_FETCH_H
#define SLUICE_FETCH_H

struct broker;
struct fetcher;

struct fetcher *fetcher_new(struct broker *b);
void fetcher_free(struct fetcher *f);
/* Answers every parked fetch now with what it has (shutdown). */
void fetcher_release_all(struct fetcher *f);

#endif
