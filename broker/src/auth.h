/* auth.h: the authorization check every Kafka handler makes. A connection carries its
 * principal ("User:<name>", or "User:ANONYMOUS" when it did not authenticate); with an
 * authorizer configured each request is checked against the ACLs, without one
 * everything is allowed. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kreq;

/* Whether req's principal may perform op (enum acl_op) on the resource (enum acl_res,
 * name of name_len bytes; ACL_CLUSTER_NAME for the cluster). */
bool auth_allowed(const struct kreq *req, int8_t res_type, const char *name, size_t name_len,
                  int8_t op);
/* The same check, not counted as a denial: for filtering what a listing shows (as
 * Kafka does not log those) and for authorized-operations bit fields. */
bool auth_visible(const struct kreq *req, int8_t res_type, const char *name, size_t name_len,
                  int8_t op);

/* Whether req's principal may READ the topic name (len bytes). A shared view is a topic
 * for ACL purposes, but reading through it reads its source topic, so a view also needs
 * READ on the source: a view with a harmless name must not open another tenant's data. */
bool auth_topic_read(const struct kreq *req, const char *name, size_t len);

#endif
