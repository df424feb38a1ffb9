/* share_admin.h: the share-group part of the admin HTTP API, as JSON in and out; admin.c
 * routes the requests and owns HTTP. Errors come back as {"error":{"code","message"}}. */
#ifndef SLUICE_SHARE_ADMIN_H
#define SLUICE_SHARE_ADMIN_H

#include <cjson/cJSON.h>
#include <stdint.h>

struct broker;
struct share_group;

/* PUT /v1/share-groups/{id} {topic, expected_members, virtual_partitions, lock_ms,
 * max_deliveries}: creates or updates (idempotent). With virtual_partitions the topic gets
 * a shared view whose share group is id. Returns the body; sets *status. */
cJSON *share_admin_put(struct broker *b, const char *id, const cJSON *body, int *status);
/* POST /v1/share-groups/{id}/members/{member}/release. */
cJSON *share_admin_release(struct broker *b, const char *id, const char *member, int *status);
/* GET /v1/share-groups/{id} and the share part of GET /v1/groups/{id}: the share group
 * named id, or the share group of a view the classic group id consumes. NULL when none. */
cJSON *share_admin_group(struct broker *b, const char *id);
/* Adds {"group_id","type":"share",...} of every share group to arr (GET /v1/groups). */
void share_admin_list(struct broker *b, cJSON *arr);

#endif
