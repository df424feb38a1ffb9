/* principal_admin.h: /v1/principals in the admin HTTP API, as JSON in and out: a SASL
 * user (its salted SCRAM credentials) and the ACLs whose principal it is. admin.c routes
 * the requests and owns HTTP. Errors come back as {"error":{"code","message"}}. */
#ifndef SLUICE_PRINCIPAL_ADMIN_H
#define SLUICE_PRINCIPAL_ADMIN_H

#include <cjson/cJSON.h>

struct broker;

/* GET /v1/principals/{name}: {name, mechanisms[], acls[]}; NULL when neither a
 * credential nor an ACL names it. */
cJSON *principal_admin_get(struct broker *b, const char *name);
/* PUT /v1/principals/{name} {password?, acls?[]}: sets the password (both SCRAM
 * mechanisms) and replaces the principal's ACLs, after checking all of it. Sets
 * *status (200, 201 when new, 4xx with an error body). */
cJSON *principal_admin_put(struct broker *b, const char *name, const cJSON *body, int *status);
/* DELETE /v1/principals/{name}: removes credentials and ACLs. Returns the HTTP status
 * (204, or 404 when there was nothing). */
int principal_admin_delete(struct broker *b, const char *name);
/* GET /v1/principals?prefix=&after=&limit=: {principals:[{name, mechanisms}], next}. */
cJSON *principal_admin_list(struct broker *b, const char *prefix, const char *after, int limit);

#endif
