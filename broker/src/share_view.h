/* share_view.h: shared views for classic consumers (door 2 of the share engine).
 *
 * A topic t with the config shared.virtual.partitions = V has a view, named t.shared
 * unless shared.name says otherwise, whose Metadata shows V virtual partitions and whose
 * topic id is t's id with the top bit flipped. An ordinary consumer group subscribes to
 * the view; the classic protocol spreads the V partitions over its members.
 *
 * A Fetch on virtual partition v acquires the next available batches of t's real
 * partitions for member "v<n>" of the view's share group (shared.group, default the view
 * name), rewrites each batch's baseOffset into v's own offset space (a per-v counter),
 * and remembers the mapping. An OffsetCommit on v acknowledges what v was given below the
 * committed offset. A fetch from another connection, or at an offset below what v handed
 * out, means v changed owner (or seeked back): v's unacknowledged records from there on
 * go back to available and v continues from the fetch offset. Each v holds at most
 * shared.max.unacked records; a fetch past that returns nothing and parks like a
 * long-poll, woken by acknowledgements. Plain consumers of t see t unchanged. */
#ifndef SLUICE_SHARE_VIEW_H
#define SLUICE_SHARE_VIEW_H

#include "kcodec.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct conn;
struct partition;
struct share_group;
struct sview;
struct sviews;
struct topic;

#define SVIEW_DEFAULT_MAX_UNACKED 64
#define SVIEW_SUFFIX ".shared"

struct sviews *sviews_new(struct broker *b);
void sviews_free(struct sviews *vs);

/* The view named name / with view id id, or NULL. Re-checks the real topic's configs on
 * each call, so a view disappears with its topic or its shared.* settings. */
struct sview *share_view_find(struct broker *b, const char *name, size_t len);
struct sview *share_view_find_id(struct broker *b, const uint8_t id[16]);
/* The view of real topic t, or NULL when t has none. */
struct sview *share_view_of(struct broker *b, struct topic *t);

const char *share_view_name(const struct sview *v);
const uint8_t *share_view_id(const struct sview *v);
int32_t share_view_partitions(const struct sview *v);
/* The view's share group (resolved by name: an admin may delete and recreate it). */
struct share_group *share_view_group(struct broker *b, const struct sview *v);
/* The view name t would have (its shared.name or <t>.shared) into out (TOPIC_NAME_MAX+1). */
void share_view_name_of(const struct topic *t, char *out, size_t cap);

/* Serves a Fetch of virtual partition vp at offset for connection c: writes whole record
 * batches (baseOffset rewritten) into w up to max_bytes (at least one batch when any is
 * available), sets *copied, and *hwm / *start to v's end and start offsets. Returns a Kafka
 * error code. */
int16_t share_view_read(struct sview *v, struct conn *c, kc_str client_id, int32_t vp,
                        int64_t offset, int64_t max_bytes, kc_writer *w, int64_t *copied,
                        int64_t *hwm, int64_t *start);
/* Calls fn for each real partition of the view (for parking a fetch on them). */
typedef void sview_part_fn(void *arg, struct partition *p);
void share_view_foreach_real(struct broker *b, struct sview *v, sview_part_fn *fn, void *arg);
/* ListOffsets: latest (-1) is v's next offset, earliest (-2) its first unacknowledged
 * handed-out offset (or next); a timestamp answers next. */
int16_t share_view_list_offset(struct sview *v, int32_t vp, int64_t ts, int64_t *offset);
/* The end offset of vp (consumer lag), or -1. */
int64_t share_view_end_offset(struct broker *b, const char *name, int32_t vp);

/* A classic group committed offset on view partition vp: acknowledges what vp was given
 * below it. Writes the share state to the WAL; the commit's own fsync covers it. */
void share_view_committed(struct broker *b, const char *group, const char *view, size_t len,
                          int32_t vp, int64_t offset);

/* Releases the records held by the view partitions whose owner is member: a classic member
 * id, or a client.id, of the group that last committed to the view, or the client.id
 * that fetched them. Returns how many records went back, or -1 when g is no view's group. */
int64_t share_view_release_member(struct broker *b, struct share_group *g, const char *member);

/* Makes sure the share group of the view of t exists with the topic's settings (admin
 * create/alter). Returns 0, or -1 with msg. */
int share_view_setup(struct broker *b, struct topic *t, char *msg, size_t msglen);

/* For the admin API: the share group of the view a classic group last committed to (NULL:
 * none), and a JSON array of g's view partitions that have an owner or records out. */
struct share_group *share_view_group_of_classic(struct broker *b, const char *classic_group);
struct cJSON;
struct cJSON *share_view_json(struct broker *b, struct share_group *g);

#endif
