/* acl.h: access-control lists. A rule (binding) allows or denies one principal an
 * operation on a resource pattern; a decision looks up only the rules that can match
 * the resource (its literal name, the wildcard, and each prefix of the name), so it
 * costs O(length of the name) hash lookups whatever the total number of rules. Rules
 * persist in the store (META column family, keys "acl/..."). Codes are Kafka's, as
 * in DescribeAcls/CreateAcls/DeleteAcls. */
#ifndef SLUICE_ACL_H
#define SLUICE_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Kafka ResourceType */
enum acl_res {
    ACL_RES_ANY = 1, /* filters only */
    ACL_RES_TOPIC = 2,
    ACL_RES_GROUP = 3,
    ACL_RES_CLUSTER = 4, /* the one cluster resource is named "kafka-cluster" */
    ACL_RES_TXN = 5,
};

/* Kafka PatternType */
enum acl_pattern {
    ACL_PAT_ANY = 1,     /* filters only: any pattern type, names compared exactly */
    ACL_PAT_MATCH = 2,   /* filters only: rules that would match this resource name */
    ACL_PAT_LITERAL = 3, /* the name, or "*" for every resource of the type */
    ACL_PAT_PREFIXED = 4,
};

/* Kafka AclOperation */
enum acl_op {
    ACL_OP_ANY = 1, /* filters only */
    ACL_OP_ALL = 2,
    ACL_OP_READ = 3,
    ACL_OP_WRITE = 4,
    ACL_OP_CREATE = 5,
    ACL_OP_DELETE = 6,
    ACL_OP_ALTER = 7,
    ACL_OP_DESCRIBE = 8,
    ACL_OP_CLUSTER_ACTION = 9,
    ACL_OP_DESCRIBE_CONFIGS = 10,
    ACL_OP_ALTER_CONFIGS = 11,
    ACL_OP_IDEMPOTENT_WRITE = 12,
};

/* Kafka AclPermissionType */
enum acl_perm {
    ACL_PERM_ANY = 1, /* filters only */
    ACL_PERM_DENY = 2,
    ACL_PERM_ALLOW = 3,
};

#define ACL_CLUSTER_NAME "kafka-cluster"

/* Caps on a rule's strings, in bytes without the NUL. Resource names reach group ids
 * (GROUP_ID_MAX, longer than Kafka's 249-byte topic names); a principal is
 * "User:" plus a PRINCIPAL_NAME_MAX name, with room for other principal types; a host
 * is an IP address or a DNS name. */
enum { ACL_NAME_MAX = 1024, ACL_PRINCIPAL_MAX = 263, ACL_HOST_MAX = 255 };

/* One rule, or (with the ANY/MATCH codes and NULL strings meaning "any") a filter.
 * Strings are NUL-terminated; principal is "User:<name>" or "User:*", host is an IP
 * or "*". */
struct acl_binding {
    int8_t res_type;
    const char *res_name;
    int8_t pattern;
    const char *principal;
    const char *host;
    int8_t op;
    int8_t perm;
};

struct acls;

/* Loads every stored rule. super_users is a ';' or ',' separated list of principals
 * ("User:admin;User:ANONYMOUS") that every check allows. NULL on failure (logged). */
struct acls *acls_open(struct store *st, const char *super_users);
void acls_free(struct acls *a);

/* Whether principal, connected from host, may perform op on the resource. Kafka's
 * rules: a super user may do anything; any matching DENY wins; otherwise a matching
 * ALLOW is needed (op, or ALL; READ, WRITE, DELETE and ALTER imply DESCRIBE;
 * ALTER_CONFIGS implies DESCRIBE_CONFIGS); with no matching rule the answer is no.
 * A rule matches on principal (or User:*), host (or *), and resource (literal name,
 * literal "*", or a prefixed pattern that is a prefix of name). */
bool acl_allowed(const struct acls *a, const char *principal, const char *host, int8_t res_type,
                 const char *name, size_t name_len, int8_t op);

/* Checks that b is a complete rule (no filter codes, names present and bounded).
 * Returns 0, or a negative value with a message in err. */
int acl_binding_valid(const struct acl_binding *b, char *err, size_t errlen);

/* Adds a rule and persists it; adding an existing rule is a no-op. Returns 0 or -1. */
int acls_add(struct acls *a, const struct acl_binding *b);

typedef void acl_visit_fn(void *arg, const struct acl_binding *b);

/* Calls fn for every rule that matches filter (DescribeAcls semantics). A filter that
 * names a principal costs O(that principal's rules); one that names a resource type, a
 * resource and a principal O(the name's length); any other scans every rule. A filter
 * principal is an exact string: "User:*" matches only rules for "User:*". */
void acls_foreach(const struct acls *a, const struct acl_binding *filter, acl_visit_fn *fn,
                  void *arg);

/* Deletes (and unpersists) every rule that matches filter (DeleteAcls semantics),
 * calling fn, if not NULL, for each before it goes. Returns the number deleted, or -1
 * on a store error. */
int acls_delete(struct acls *a, const struct acl_binding *filter, acl_visit_fn *fn, void *arg);

/* Makes principal's rules exactly rules[0..n) (each valid, with that principal; n may
 * be 0), in one atomic store write: after a crash the store holds the old set or the
 * new, never a mix. Rules it already has are not rewritten. Costs O(the principal's
 * rules + n log n), whatever the total. Returns 0, or -1 (invalid rules, out of
 * memory, or a store error) with nothing changed. */
int acls_replace_principal(struct acls *a, const char *principal, const struct acl_binding *rules,
                           int n);

/* Number of rules. */
size_t acls_count(const struct acls *a);

/* For tests and benchmarks: the number of table entries (keys) that filters have
 * examined since acls_open (acls_foreach, acls_delete, acls_replace_principal), so a
 * test can check what a filter costs without timing it. */
size_t acls_visits(const struct acls *a);

/* For tests and benchmarks: with on, every filter scans the whole table, as it would
 * without the indexes, to compare answers and costs with. Decisions are unaffected. */
void acls_set_scan_only(struct acls *a, bool on);

/* Heap bytes the rule table holds (entries, host slots, buckets, principal index),
 * malloc's own overhead included. Walks the table: for metrics and benchmarks, not hot
 * paths. */
size_t acls_memory(const struct acls *a);

/* Whether principal is a super user. */
bool acls_is_super(const struct acls *a, const char *principal);

#endif
