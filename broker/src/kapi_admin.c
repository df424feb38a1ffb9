/* kapi_admin.c: the Kafka admin APIs: CreateTopics, DeleteTopics, CreatePartitions,
 * DeleteRecords, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
 *
 * Every handler reads its request twice. The first pass checks the whole frame, so a
 * malformed request changes nothing. The second pass reads each entry again, acts on it
 * and writes its result. Nothing is allocated from a count the client declared, except
 * small arrays whose size is capped first (ADM_MAX_ENTRIES, ADM_MAX_CFGS). */

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "kafka.h"
#include "kapi_share.h"
#include "topic.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ADM_MAX_ENTRIES = 10000, /* topics or resources in one request */
    ADM_MAX_CFGS = 1000,     /* config entries or keys for one topic or resource */
};

#define ADM_MSG 256

/* ConfigResource.Type (GROUP is 32 here; 3 is a group only in ACL ResourceType) */
enum { RES_TOPIC = 2, RES_BROKER = 4, RES_GROUP = 32 };

/* DescribeConfigsResponse ConfigSource */
enum {
    SRC_TOPIC_CONFIG = 1,
    SRC_STATIC_BROKER_CONFIG = 4,
    SRC_DEFAULT_CONFIG = 5,
    SRC_GROUP_CONFIG = 8,
};

/* DescribeConfigsResponse ConfigType */
enum {
    TYPE_UNKNOWN = 0,
    TYPE_BOOLEAN = 1,
    TYPE_STRING = 2,
    TYPE_INT = 3,
    TYPE_LONG = 5,
    TYPE_DOUBLE = 6,
    TYPE_LIST = 7,
};

/* IncrementalAlterConfigs ConfigOperation */
enum { OP_SET = 0, OP_DELETE = 1, OP_APPEND = 2, OP_SUBTRACT = 3 };

static const uint8_t zero_uuid[16];

/* ---------------------------------------------------------------- helpers */

/* Reads a non-nullable ARRAY header; null is malformed. Returns the count (0 on error). */
static int32_t adm_array(kc_reader *r, bool flex, size_t min_elem)
{
    int32_t n = kc_array(r, flex, min_elem);

    if (n < 0) {
        if (kc_ok(r))
            r->err = KC_EINVAL;
        return 0;
    }
    return n;
}

/* Reads a non-nullable STRING; null is malformed. */
static kc_str adm_string(kc_reader *r, bool flex)
{
    kc_str s = kc_string(r, flex);

    if (s.len < 0 && kc_ok(r))
        r->err = KC_EINVAL;
    return s;
}

/* Turns a module's return value into a Kafka error code: negative values that are not
 * Kafka codes become UNKNOWN_SERVER_ERROR. */
/* Whether the principal may perform op on a config resource (RES_*), and the error
 * to answer when not. */
static int16_t adm_res_auth(struct kreq *req, int8_t type, kc_str name, int8_t op)
{
    size_t len = name.len > 0 ? (size_t)name.len : 0;
    switch (type) {
    case RES_TOPIC:
        return auth_allowed(req, ACL_RES_TOPIC, name.p, len, op) ? KERR_NONE
                                                                  : KERR_TOPIC_AUTHORIZATION_FAILED;
    case RES_GROUP:
        return auth_allowed(req, ACL_RES_GROUP, name.p, len, op) ? KERR_NONE
                                                                  : KERR_GROUP_AUTHORIZATION_FAILED;
    case RES_BROKER:
        return auth_allowed(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, sizeof ACL_CLUSTER_NAME - 1,
                            op)
                   ? KERR_NONE
                   : KERR_CLUSTER_AUTHORIZATION_FAILED;
    default:
        return KERR_NONE;
    }
}

static int16_t adm_kerr(int rc)
{
    return rc < 0 ? (int16_t)KERR_UNKNOWN_SERVER : (int16_t)rc;
}

/* Writes a formatted message into msg and returns the Kafka error code err. */
static int16_t adm_fail(int16_t err, char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int16_t adm_fail(int16_t err, char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return err;
}

/* Writes an error message: null when there is no error or no text. */
static void adm_w_msg(kc_writer *w, bool flex, int16_t err, const char *msg)
{
    kc_w_cstr(w, flex, err != KERR_NONE && msg[0] ? msg : NULL);
}

static void adm_w_str(kc_writer *w, bool flex, kc_str s)
{
    kc_w_string(w, flex, s.len < 0 ? NULL : s.p, s.len);
}

static bool adm_str_eq(kc_str a, kc_str b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.p, b.p, (size_t)a.len) == 0);
}

struct name_ix {
    kc_str s;
    int32_t i;
};

static int name_ix_cmp(const void *pa, const void *pb)
{
    const struct name_ix *a = pa, *b = pb;
    int c;

    if (a->s.len != b->s.len)
        return a->s.len < b->s.len ? -1 : 1;
    c = a->s.len > 0 ? memcmp(a->s.p, b->s.p, (size_t)a->s.len) : 0;
    if (c)
        return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Finds names that occur more than once. Returns a new array with dup[i] = 1 for the
 * first occurrence of a repeated name and 2 for the later ones, 0 otherwise; NULL when
 * there is nothing to check or memory ran out (then duplicates go undetected). */
static uint8_t *adm_dups(const kc_str *names, int32_t n)
{
    struct name_ix *ix;
    uint8_t *dup;
    int32_t i, j;

    if (!names || n < 2)
        return NULL;
    ix = malloc((size_t)n * sizeof *ix);
    dup = calloc((size_t)n, 1);
    if (!ix || !dup) {
        free(ix);
        free(dup);
        return NULL;
    }
    for (i = 0; i < n; i++)
        ix[i] = (struct name_ix){names[i], i};
    qsort(ix, (size_t)n, sizeof *ix, name_ix_cmp);
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && adm_str_eq(ix[i].s, ix[j].s); j++)
            dup[ix[j].i] = 2;
        if (j > i + 1)
            dup[ix[i].i] = 1;
    }
    free(ix);
    return dup;
}

/* The number of results when later duplicates get none. */
static int32_t adm_nresults(int32_t n, const uint8_t *dup)
{
    int32_t i, c = n;

    for (i = 0; dup && i < n; i++)
        if (dup[i] == 2)
            c--;
    return c;
}

/* Reads BrokerIds; true when it is exactly [node_id]: the one broker holds the replica. */
static bool adm_read_brokers(kc_reader *r, bool flex, int32_t node_id)
{
    int32_t i, n = adm_array(r, flex, 4);
    bool ok = n == 1;

    for (i = 0; i < n && kc_ok(r); i++)
        if (kc_i32(r) != node_id)
            ok = false;
    return ok;
}

/* Collects topic names for duplicate detection during a first pass. */
struct name_list {
    kc_str *names; /* NULL when the request is over the cap */
    int32_t n;
};

static void name_list_init(struct name_list *l, int32_t n)
{
    l->n = n;
    l->names = n > 1 && n <= ADM_MAX_ENTRIES ? calloc((size_t)n, sizeof *l->names) : NULL;
}

static void name_list_set(struct name_list *l, int32_t i, kc_str s)
{
    if (l->names && i < l->n)
        l->names[i] = s;
}

/* ---------------------------------------------------------------- config metadata */

struct cfg_info {
    const char *name;
    int8_t type; /* ConfigType */
    const char *doc;
};

static const struct cfg_info cfg_infos[] = {
    {"auto.create.topics.enable", TYPE_BOOLEAN,
     "Create a topic on first use by a producer or consumer."},
    {"broker.id", TYPE_INT, "The id of this broker."},
    {"cleanup.policy", TYPE_LIST, "Retention policy for old log segments (delete)."},
    {"compression.type", TYPE_STRING,
     "Compression of stored batches; batches are kept as the producer sent them."},
    {"delete.retention.ms", TYPE_LONG, NULL},
    {"file.delete.delay.ms", TYPE_LONG, NULL},
    {"flush.messages", TYPE_LONG, NULL},
    {"flush.ms", TYPE_LONG, NULL},
    {"flush.policy", TYPE_STRING,
     "batch: fsync before acknowledging; interval: fsync periodically."},
    {"index.interval.bytes", TYPE_INT, NULL},
    {"log.retention.bytes", TYPE_LONG,
     "Default maximum bytes kept per partition; -1 for no limit."},
    {"log.retention.ms", TYPE_LONG, "Default time a record is kept; -1 keeps it forever."},
    {"max.compaction.lag.ms", TYPE_LONG, NULL},
    {"max.message.bytes", TYPE_INT, "The largest record batch the topic accepts."},
    {"message.max.bytes", TYPE_INT, "Default largest record batch a topic accepts."},
    {"message.timestamp.type", TYPE_STRING, NULL},
    {"min.cleanable.dirty.ratio", TYPE_DOUBLE, NULL},
    {"min.compaction.lag.ms", TYPE_LONG, NULL},
    {"min.insync.replicas", TYPE_INT, NULL},
    {"num.partitions", TYPE_INT, "Default number of partitions of a new topic."},
    {"preallocate", TYPE_BOOLEAN, NULL},
    {"retention.bytes", TYPE_LONG,
     "Maximum bytes kept per partition before old batches are deleted; -1 for no limit."},
    {"retention.ms", TYPE_LONG, "Maximum time a record is kept; -1 keeps it forever."},
    {"segment.bytes", TYPE_INT, NULL},
    {"segment.ms", TYPE_LONG, NULL},
    {"storage.mode", TYPE_STRING, "Where records live: memory, hybrid, persistent or tiered."},
    {"unclean.leader.election.enable", TYPE_BOOLEAN, NULL},
};

static const struct cfg_info *cfg_info_find(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof cfg_infos / sizeof cfg_infos[0]; i++)
        if (strcmp(cfg_infos[i].name, name) == 0)
            return &cfg_infos[i];
    return NULL;
}

/* Configs whose values must not be shown (object-store credentials and the like). */
static bool cfg_sensitive(const char *name)
{
    return strstr(name, "secret") || strstr(name, "password") || strstr(name, "credential");
}

/* ---------------------------------------------------------------- config entries */

/* Writes config entries for CreateTopics (v5+) or DescribeConfigs. A compact array's
 * count comes before its elements, so each list is produced twice: once with w NULL
 * to count, then to write. */
struct cfg_emit {
    kc_writer *w;    /* NULL while counting */
    int16_t api_key; /* 19 CreateTopics or 32 DescribeConfigs */
    int16_t version;
    bool flex;
    bool synonyms;      /* IncludeSynonyms */
    bool docs;          /* IncludeDocumentation */
    const kc_str *keys; /* ConfigurationKeys filter; NULL means every config */
    int32_t nkeys;
    int32_t count;
};

static bool cfg_wanted(const struct cfg_emit *e, const char *key)
{
    int32_t i;

    if (!e->keys)
        return true;
    for (i = 0; i < e->nkeys; i++)
        if (kc_str_eq(e->keys[i], key))
            return true;
    return false;
}

/* DescribeConfigsResourceResult, whose fields vary by version. */
static void dc_w_entry(const struct cfg_emit *e, const char *key, const char *value, int8_t source,
                       bool read_only, bool sensitive)
{
    const struct cfg_info *info = cfg_info_find(key);
    kc_writer *w = e->w;

    kc_w_cstr(w, e->flex, key);   /* Name */
    kc_w_cstr(w, e->flex, value); /* Value */
    kc_w_bool(w, read_only);      /* ReadOnly */
    if (e->version == 0)
        kc_w_bool(w, source == SRC_DEFAULT_CONFIG); /* IsDefault */
    else
        kc_w_i8(w, source);  /* ConfigSource */
    kc_w_bool(w, sensitive); /* IsSensitive */
    if (e->version >= 1) {   /* Synonyms: the entry itself */
        kc_w_array(w, e->flex, e->synonyms ? 1 : 0);
        if (e->synonyms) {
            kc_w_cstr(w, e->flex, key);
            kc_w_cstr(w, e->flex, value);
            kc_w_i8(w, source);
            kc_w_tags(w, e->flex);
        }
    }
    if (e->version >= 3) {
        kc_w_i8(w, info ? info->type : TYPE_STRING);               /* ConfigType */
        kc_w_cstr(w, e->flex, e->docs && info ? info->doc : NULL); /* Documentation */
    }
    kc_w_tags(w, e->flex);
}

static void cfg_emit_one(struct cfg_emit *e, const char *key, const char *value, int8_t source,
                         bool read_only)
{
    bool sensitive = cfg_sensitive(key);

    if (!cfg_wanted(e, key))
        return;
    e->count++;
    if (!e->w)
        return;
    if (sensitive)
        value = NULL;
    if (e->api_key == 32) {
        dc_w_entry(e, key, value, source, read_only, sensitive);
        return;
    }
    kc_w_cstr(e->w, e->flex, key);   /* Name */
    kc_w_cstr(e->w, e->flex, value); /* Value */
    kc_w_bool(e->w, read_only);      /* ReadOnly */
    kc_w_i8(e->w, source);           /* ConfigSource */
    kc_w_bool(e->w, sensitive);      /* IsSensitive */
    kc_w_tags(e->w, e->flex);
}

static void cfg_topic_cb(void *arg, const char *key, const char *value, bool is_default,
                         bool read_only)
{
    cfg_emit_one(arg, key, value, is_default ? SRC_DEFAULT_CONFIG : SRC_TOPIC_CONFIG, read_only);
}

/* Writes the configs of topic t as an array. */
static void cfg_w_topic(struct cfg_emit *e, struct topics *ts, const struct topic *t, kc_writer *w)
{
    e->w = NULL;
    e->count = 0;
    topic_config_describe(ts, t, cfg_topic_cb, e);
    kc_w_array(w, e->flex, e->count);
    e->w = w;
    topic_config_describe(ts, t, cfg_topic_cb, e);
}

static void cfg_group_cb(void *arg, const char *key, const char *value, bool is_default,
                         bool read_only)
{
    cfg_emit_one(arg, key, value, is_default ? SRC_DEFAULT_CONFIG : SRC_GROUP_CONFIG, read_only);
}

/* Writes the configs of share group `group` as an array. */
static void cfg_w_group(struct cfg_emit *e, struct broker *b, kc_str group, kc_writer *w)
{
    e->w = NULL;
    e->count = 0;
    kapi_share_group_cfg_describe(b, group, cfg_group_cb, e);
    kc_w_array(w, e->flex, e->count);
    e->w = w;
    kapi_share_group_cfg_describe(b, group, cfg_group_cb, e);
}

/* The broker's own settings: a small, read-only set taken from its configuration. */
static void cfg_w_broker(struct cfg_emit *e, const struct config *c, kc_writer *w)
{
    char v[6][24];
    const char *k[6] = {"auto.create.topics.enable", "broker.id",         "log.retention.bytes",
                        "log.retention.ms",          "message.max.bytes", "num.partitions"};
    int i, pass;

    snprintf(v[0], sizeof v[0], "%s", c->auto_create_topics ? "true" : "false");
    snprintf(v[1], sizeof v[1], "%" PRId32, c->node_id);
    snprintf(v[2], sizeof v[2], "%" PRId64, c->default_retention_bytes);
    snprintf(v[3], sizeof v[3], "%" PRId64, c->default_retention_ms);
    snprintf(v[4], sizeof v[4], "%" PRId32, c->default_max_message_bytes);
    snprintf(v[5], sizeof v[5], "%" PRId32, c->default_partitions);
    e->count = 0;
    for (pass = 0; pass < 2; pass++) {
        e->w = pass ? w : NULL;
        if (pass)
            kc_w_array(w, e->flex, e->count);
        for (i = 0; i < 6; i++)
            cfg_emit_one(e, k[i], v[i], SRC_STATIC_BROKER_CONFIG, true);
    }
}

/* True when name is this broker's id or "" (the cluster-wide default resource). */
static bool adm_is_this_broker(const struct broker *b, kc_str name)
{
    char id[16];

    snprintf(id, sizeof id, "%" PRId32, b->cfg.node_id);
    return name.len == 0 || kc_str_eq(name, id);
}

/* ---------------------------------------------------------------- CreateTopics (19) */

struct ct_req {
    int32_t n;          /* Topics count */
    bool validate_only; /* validateOnly */
    uint8_t *dup;
    struct topic_cfg_change *cfg; /* room for ADM_MAX_CFGS, filled per topic in pass 2 */
};

struct ct_topic {
    kc_str name;                /* Name */
    int32_t num_partitions;     /* NumPartitions */
    int16_t replication_factor; /* ReplicationFactor */
    int32_t nassign;            /* Assignments count */
    bool assign_ok;             /* each assignment is [node_id], indexed 0..nassign-1 in order */
    int32_t ncfg;               /* Configs count */
};

/* Reads one CreatableReplicaAssignment. Partitions must come in index order. */
static bool ct_read_assignment(kc_reader *r, bool flex, int32_t want, int32_t node_id)
{
    int32_t index = kc_i32(r);                    /* PartitionIndex */
    bool ok = adm_read_brokers(r, flex, node_id); /* BrokerIds */

    kc_skip_tags(r, flex);
    return ok && index == want;
}

/* Reads one CreatableTopic; its configs go to cfg when cfg is not NULL. */
static void ct_read_topic(kc_reader *r, bool flex, int32_t node_id, struct ct_topic *t,
                          struct topic_cfg_change *cfg)
{
    int32_t i;

    t->name = adm_string(r, flex);
    t->num_partitions = kc_i32(r);
    t->replication_factor = kc_i16(r);
    t->nassign = adm_array(r, flex, 5);
    t->assign_ok = true;
    for (i = 0; i < t->nassign && kc_ok(r); i++)
        if (!ct_read_assignment(r, flex, i, node_id))
            t->assign_ok = false;
    t->ncfg = adm_array(r, flex, 2);
    for (i = 0; i < t->ncfg && kc_ok(r); i++) {
        kc_str k = adm_string(r, flex); /* Name */
        kc_str v = kc_string(r, flex);  /* Value, nullable */

        kc_skip_tags(r, flex);
        if (cfg && i < ADM_MAX_CFGS)
            cfg[i] =
                (struct topic_cfg_change){k.p, (size_t)(k.len > 0 ? k.len : 0),
                                          v.len < 0 ? NULL : v.p, (size_t)(v.len > 0 ? v.len : 0)};
    }
    kc_skip_tags(r, flex);
}

/* Pass 1: checks the whole request and finds duplicate names. */
static int ct_scan(struct kreq *req, struct ct_req *q)
{
    kc_reader *r = &req->r;
    struct name_list names;
    struct ct_topic t;
    int32_t i;

    q->n = adm_array(r, req->flexible, 9);
    name_list_init(&names, q->n);
    for (i = 0; i < q->n && kc_ok(r); i++) {
        ct_read_topic(r, req->flexible, req->b->cfg.node_id, &t, NULL);
        name_list_set(&names, i, t.name);
    }
    kc_i32(r); /* timeoutMs: creation is synchronous */
    q->validate_only = req->api_version >= 1 ? kc_bool(r) : false;
    kc_skip_tags(r, req->flexible);
    if (kc_ok(r))
        q->dup = adm_dups(names.names, names.n);
    free(names.names);
    return kc_ok(r) ? 0 : -1;
}

/* Works out the partition count from NumPartitions or Assignments into *parts. */
static int16_t ct_check_partitions(const struct broker *b, const struct ct_topic *t, int32_t *parts,
                                   char *msg, size_t len)
{
    if (t->nassign > 0) {
        if (t->num_partitions != -1 || t->replication_factor != -1)
            return adm_fail(KERR_INVALID_REQUEST, msg, len,
                            "Both numPartitions or replicationFactor and replicasAssignments "
                            "were set. Both cannot be used at the same time.");
        if (!t->assign_ok)
            return adm_fail(KERR_INVALID_REPLICA_ASSIGNMENT, msg, len,
                            "Replica assignments must list partitions 0..%d in order, each on "
                            "broker %" PRId32 " only (single broker)",
                            (int)t->nassign - 1, b->cfg.node_id);
        *parts = t->nassign;
    } else {
        *parts = t->num_partitions == -1 ? b->cfg.default_partitions : t->num_partitions;
        if (*parts <= 0)
            return adm_fail(KERR_INVALID_PARTITIONS, msg, len,
                            "Number of partitions was set to an invalid non-positive value.");
    }
    if (*parts > TOPIC_MAX_PARTITIONS)
        return adm_fail(KERR_INVALID_PARTITIONS, msg, len,
                        "Number of partitions %" PRId32 " is above the limit of %d", *parts,
                        TOPIC_MAX_PARTITIONS);
    return KERR_NONE;
}

/* Checks what the topic registry cannot: the request's shape and replica layout.
 * Sets *parts to the partition count to create. */
static int16_t ct_check(const struct broker *b, const struct ct_req *q, const struct ct_topic *t,
                        uint8_t dup, int32_t *parts, char *msg, size_t len)
{
    int16_t rf = t->replication_factor, err;

    if (q->n > ADM_MAX_ENTRIES)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "at most %d topics per request",
                        ADM_MAX_ENTRIES);
    if (dup)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "Duplicate topic name.");
    if (t->name.len == 0 || topic_name_check(t->name.p, (size_t)t->name.len) != KERR_NONE)
        return adm_fail(KERR_INVALID_TOPIC, msg, len,
                        "Topic name is invalid: it must be 1-249 characters of [a-zA-Z0-9._-] "
                        "and not '.' or '..'");
    if (t->ncfg > ADM_MAX_CFGS)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "at most %d configs per topic",
                        ADM_MAX_CFGS);
    if ((err = ct_check_partitions(b, t, parts, msg, len)) != KERR_NONE)
        return err;
    if (rf == 0 || rf < -1)
        return adm_fail(KERR_INVALID_REPLICATION_FACTOR, msg, len,
                        "Replication factor must be larger than 0, or -1 to use the default "
                        "value.");
    if (rf > 1)
        return adm_fail(KERR_INVALID_REPLICATION_FACTOR, msg, len,
                        "Replication factor %d is larger than the number of brokers: 1 "
                        "(single broker)",
                        (int)rf);
    return KERR_NONE;
}

/* Writes one CreatableTopicResult. tp is the created topic, or NULL. */
static void ct_w_result(struct kreq *req, kc_writer *w, const struct ct_topic *t, int16_t err,
                        const char *msg, int32_t parts, struct topic *tp)
{
    bool flex = req->flexible;
    int16_t v = req->api_version;
    struct cfg_emit e = {.api_key = 19, .version = v, .flex = flex};

    adm_w_str(w, flex, t->name); /* Name */
    if (v >= 7)
        kc_w_uuid(w, tp ? tp->id : zero_uuid); /* TopicId */
    kc_w_i16(w, err);                          /* ErrorCode */
    if (v >= 1)
        adm_w_msg(w, flex, err, msg); /* ErrorMessage */
    if (v >= 5) {
        kc_w_i32(w, err ? -1 : tp ? tp->partitions : parts); /* NumPartitions */
        kc_w_i16(w, err ? -1 : 1);                           /* ReplicationFactor */
        if (tp)
            cfg_w_topic(&e, req->b->topics, tp, w); /* Configs */
        else
            kc_w_array(w, flex, 0);
    }
    kc_w_tags(w, flex); /* TopicConfigErrorCode (tag 0) is never set */
}

static void ct_handle(struct kreq *req, const struct ct_req *q, const struct ct_topic *t,
                      uint8_t dup, kc_writer *w)
{
    char msg[ADM_MSG] = "";
    struct topic *tp = NULL;
    int32_t parts = 0;
    int16_t err = ct_check(req->b, q, t, dup, &parts, msg, sizeof msg);

    if (err == KERR_NONE &&
        !auth_visible(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, sizeof ACL_CLUSTER_NAME - 1,
                      ACL_OP_CREATE) &&
        !auth_allowed(req, ACL_RES_TOPIC, t->name.p, (size_t)t->name.len, ACL_OP_CREATE))
        err = adm_fail(KERR_TOPIC_AUTHORIZATION_FAILED, msg, sizeof msg, "Authorization failed.");
    if (err == KERR_NONE)
        err = adm_kerr(topic_create(req->b->topics, t->name.p, (size_t)t->name.len, parts, q->cfg,
                                    t->ncfg, q->validate_only, &tp, msg, sizeof msg));
    if (err != KERR_NONE || q->validate_only)
        tp = NULL;
    ct_w_result(req, w, t, err, msg, parts, tp);
}

int kapi_create_topics(struct kreq *req, kc_writer *w)
{
    struct ct_req q = {0};
    struct ct_topic t;
    kc_reader body = req->r, end;
    int32_t i;
    int rc = KAPI_EPARSE;

    if (ct_scan(req, &q) < 0)
        goto out;
    end = req->r;
    req->r = body;
    q.cfg = calloc(ADM_MAX_CFGS, sizeof *q.cfg);
    if (!q.cfg) {
        w->err = KC_ENOMEM;
        rc = KAPI_DONE;
        goto out;
    }
    if (req->api_version >= 2)
        kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, req->flexible, 9);
    kc_w_array(w, req->flexible, adm_nresults(q.n, q.dup));
    for (i = 0; i < q.n; i++) {
        ct_read_topic(&req->r, req->flexible, req->b->cfg.node_id, &t, q.cfg);
        if (!q.dup || q.dup[i] != 2)
            ct_handle(req, &q, &t, q.dup ? q.dup[i] : 0, w);
    }
    kc_w_tags(w, req->flexible);
    req->r = end;
    rc = KAPI_DONE;
out:
    free(q.dup);
    free(q.cfg);
    return rc;
}

/* ---------------------------------------------------------------- DeleteTopics (20) */

/* One entry of TopicNames (v0-5) or Topics (v6+). */
struct dt_topic {
    kc_str name;    /* Name; null (v6+) means look up by id */
    uint8_t id[16]; /* TopicId (v6+) */
};

static void dt_read_topic(kc_reader *r, int16_t v, bool flex, struct dt_topic *t)
{
    if (v < 6) {
        t->name = adm_string(r, flex);
        memset(t->id, 0, sizeof t->id);
        return;
    }
    t->name = kc_string(r, flex);
    kc_uuid(r, t->id);
    kc_skip_tags(r, flex);
}

/* Pass 1. Returns the number of topics, or -1 for a malformed request. */
static int32_t dt_scan(struct kreq *req)
{
    struct dt_topic t;
    int32_t i, n = adm_array(&req->r, req->flexible, req->api_version >= 6 ? 17 : 1);

    for (i = 0; i < n && kc_ok(&req->r); i++)
        dt_read_topic(&req->r, req->api_version, req->flexible, &t);
    kc_i32(&req->r); /* TimeoutMs: deletion is synchronous */
    kc_skip_tags(&req->r, req->flexible);
    return kc_ok(&req->r) ? n : -1;
}

/* Resolves and deletes one topic. Copies the topic's name and id into name/id first,
 * since deletion frees it. */
static int16_t dt_delete(struct kreq *req, int32_t n, const struct dt_topic *t,
                         char name[TOPIC_NAME_MAX + 1], uint8_t id[16], char *msg, size_t len)
{
    struct topics *ts = req->b->topics;
    struct topic *tp;
    bool by_id = t->name.len < 0;

    if (n > ADM_MAX_ENTRIES)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "at most %d topics per request",
                        ADM_MAX_ENTRIES);
    if (!by_id && memcmp(t->id, zero_uuid, 16) != 0)
        return adm_fail(KERR_INVALID_REQUEST, msg, len,
                        "You may not specify both topic name and topic id.");
    if (!by_id && !auth_allowed(req, ACL_RES_TOPIC, t->name.p, (size_t)t->name.len,
                                ACL_OP_DELETE))
        return adm_fail(KERR_TOPIC_AUTHORIZATION_FAILED, msg, len, "Authorization failed.");
    tp = by_id ? topic_find_id(ts, t->id) : topic_find(ts, t->name.p, (size_t)t->name.len);
    if (tp && by_id && !auth_allowed(req, ACL_RES_TOPIC, tp->name, strlen(tp->name), ACL_OP_DELETE))
        return adm_fail(KERR_TOPIC_AUTHORIZATION_FAILED, msg, len, "Authorization failed.");
    if (!tp && by_id)
        return adm_fail(KERR_UNKNOWN_TOPIC_ID, msg, len,
                        "This server does not host this topic ID.");
    if (!tp)
        return adm_fail(KERR_UNKNOWN_TOPIC_OR_PARTITION, msg, len,
                        "This server does not host this topic-partition.");
    snprintf(name, TOPIC_NAME_MAX + 1, "%s", tp->name);
    memcpy(id, tp->id, 16);
    return adm_kerr(topic_delete(ts, tp));
}

/* Writes one DeletableTopicResult. */
static void dt_w_result(struct kreq *req, kc_writer *w, const struct dt_topic *t, const char *name,
                        const uint8_t id[16], int16_t err, const char *msg)
{
    bool flex = req->flexible;
    int16_t v = req->api_version;

    if (name[0] || t->name.len < 0)
        kc_w_cstr(w, flex, name[0] ? name : NULL); /* Name, nullable v6+ */
    else
        adm_w_str(w, flex, t->name);
    if (v >= 6)
        kc_w_uuid(w, id); /* TopicId */
    kc_w_i16(w, err);     /* ErrorCode */
    if (v >= 5)
        adm_w_msg(w, flex, err, msg); /* ErrorMessage */
    kc_w_tags(w, flex);
}

int kapi_delete_topics(struct kreq *req, kc_writer *w)
{
    kc_reader body = req->r, end;
    struct dt_topic t;
    int32_t i, n = dt_scan(req);

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    if (req->api_version >= 1)
        kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, req->flexible, 1);
    kc_w_array(w, req->flexible, n);
    for (i = 0; i < n; i++) {
        char name[TOPIC_NAME_MAX + 1] = "", msg[ADM_MSG] = "";
        uint8_t id[16];
        int16_t err;

        dt_read_topic(&req->r, req->api_version, req->flexible, &t);
        memcpy(id, t.id, 16);
        err = dt_delete(req, n, &t, name, id, msg, sizeof msg);
        dt_w_result(req, w, &t, name, id, err, msg);
    }
    kc_w_tags(w, req->flexible);
    req->r = end;
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- CreatePartitions (37) */

struct cp_topic {
    kc_str name;     /* Name */
    int32_t count;   /* Count: the new total */
    int32_t nassign; /* Assignments count; -1 when null */
    bool assign_ok;  /* each assignment is [node_id] */
};

static void cp_read_topic(kc_reader *r, bool flex, int32_t node_id, struct cp_topic *t)
{
    int32_t i;

    t->name = adm_string(r, flex);
    t->count = kc_i32(r);
    t->nassign = kc_array(r, flex, 1);
    t->assign_ok = true;
    for (i = 0; i < t->nassign && kc_ok(r); i++) {
        if (!adm_read_brokers(r, flex, node_id)) /* BrokerIds */
            t->assign_ok = false;
        kc_skip_tags(r, flex);
    }
    kc_skip_tags(r, flex);
}

/* Pass 1: checks the request, reads ValidateOnly and finds duplicate names. Returns the
 * topic count or -1. */
static int32_t cp_scan(struct kreq *req, bool *validate_only, uint8_t **dup)
{
    kc_reader *r = &req->r;
    struct name_list names;
    struct cp_topic t;
    int32_t i, n = adm_array(r, req->flexible, 6);

    name_list_init(&names, n);
    for (i = 0; i < n && kc_ok(r); i++) {
        cp_read_topic(r, req->flexible, req->b->cfg.node_id, &t);
        name_list_set(&names, i, t.name);
    }
    kc_i32(r); /* TimeoutMs */
    *validate_only = kc_bool(r);
    kc_skip_tags(r, req->flexible);
    if (kc_ok(r))
        *dup = adm_dups(names.names, names.n);
    free(names.names);
    return kc_ok(r) ? n : -1;
}

static int16_t cp_apply(struct kreq *req, int32_t n, const struct cp_topic *t, uint8_t dup,
                        bool validate_only, char *msg, size_t len)
{
    struct topic *tp;
    int32_t cur;

    if (n > ADM_MAX_ENTRIES)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "at most %d topics per request",
                        ADM_MAX_ENTRIES);
    if (dup)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "Duplicate topic in request.");
    if (!auth_allowed(req, ACL_RES_TOPIC, t->name.p, (size_t)t->name.len, ACL_OP_ALTER))
        return adm_fail(KERR_TOPIC_AUTHORIZATION_FAILED, msg, len, "Authorization failed.");
    tp = topic_find(req->b->topics, t->name.p, (size_t)t->name.len);
    if (!tp)
        return adm_fail(KERR_UNKNOWN_TOPIC_OR_PARTITION, msg, len,
                        "The topic '%.*s' does not exist.", (int)t->name.len, t->name.p);
    cur = tp->partitions;
    if (t->count < cur)
        return adm_fail(KERR_INVALID_PARTITIONS, msg, len,
                        "Topic currently has %" PRId32 " partitions, which is higher "
                        "than the requested %" PRId32 ".",
                        cur, t->count);
    if (t->count == cur)
        return adm_fail(KERR_INVALID_PARTITIONS, msg, len,
                        "Topic already has %" PRId32 " partitions.", cur);
    if (t->count > TOPIC_MAX_PARTITIONS)
        return adm_fail(KERR_INVALID_PARTITIONS, msg, len,
                        "Number of partitions %" PRId32 " is above the limit of %d", t->count,
                        TOPIC_MAX_PARTITIONS);
    if (t->nassign >= 0 && t->nassign != t->count - cur)
        return adm_fail(KERR_INVALID_REPLICA_ASSIGNMENT, msg, len,
                        "Increasing the number of partitions by %" PRId32 " but %" PRId32
                        " assignments provided.",
                        t->count - cur, t->nassign);
    if (t->nassign >= 0 && !t->assign_ok)
        return adm_fail(KERR_INVALID_REPLICA_ASSIGNMENT, msg, len,
                        "Each new partition must be assigned to broker %" PRId32
                        " only (single broker)",
                        req->b->cfg.node_id);
    return adm_kerr(topic_add_partitions(req->b->topics, tp, t->count, validate_only, msg, len));
}

int kapi_create_partitions(struct kreq *req, kc_writer *w)
{
    kc_reader body = req->r, end;
    struct cp_topic t;
    uint8_t *dup = NULL;
    bool validate_only = false, flex = req->flexible;
    int32_t i, n = cp_scan(req, &validate_only, &dup);

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, flex, 6);
    kc_w_array(w, flex, adm_nresults(n, dup));
    for (i = 0; i < n; i++) {
        char msg[ADM_MSG] = "";
        int16_t err;

        cp_read_topic(&req->r, flex, req->b->cfg.node_id, &t);
        if (dup && dup[i] == 2)
            continue;
        err = cp_apply(req, n, &t, dup ? dup[i] : 0, validate_only, msg, sizeof msg);
        adm_w_str(w, flex, t.name);   /* Name */
        kc_w_i16(w, err);             /* ErrorCode */
        adm_w_msg(w, flex, err, msg); /* ErrorMessage */
        kc_w_tags(w, flex);
    }
    kc_w_tags(w, flex);
    req->r = end;
    free(dup);
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- DeleteRecords (21) */

/* Pass 1. Returns the topic count or -1. */
static int32_t dr_scan(struct kreq *req)
{
    kc_reader *r = &req->r;
    bool flex = req->flexible;
    int32_t i, j, np, n = adm_array(r, flex, 2);

    for (i = 0; i < n && kc_ok(r); i++) {
        adm_string(r, flex);         /* Name */
        np = adm_array(r, flex, 12); /* Partitions */
        for (j = 0; j < np && kc_ok(r); j++) {
            kc_i32(r); /* PartitionIndex */
            kc_i64(r); /* Offset */
            kc_skip_tags(r, flex);
        }
        kc_skip_tags(r, flex);
    }
    kc_i32(r); /* TimeoutMs */
    kc_skip_tags(r, flex);
    return kc_ok(r) ? n : -1;
}

/* Moves one partition's log start. Sets *low to the new LowWatermark. */
static int16_t dr_partition(struct kreq *req, int32_t n, struct topic *tp, bool denied,
                            int32_t index, int64_t offset, int64_t *low)
{
    struct partition *p;
    int16_t err;

    *low = -1;
    if (n > ADM_MAX_ENTRIES)
        return KERR_INVALID_REQUEST;
    if (denied)
        return KERR_TOPIC_AUTHORIZATION_FAILED;
    p = tp ? topic_partition(req->b->topics, tp, index) : NULL;
    if (!p)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (offset < -1)
        return KERR_OFFSET_OUT_OF_RANGE;
    err = adm_kerr(plog_truncate_before(req->b->topics, p, offset));
    *low = p->log_start;
    return err;
}

/* Reads and acts on one DeleteRecordsTopic, writing its DeleteRecordsTopicResult. */
static void dr_topic(struct kreq *req, int32_t n, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool flex = req->flexible;
    kc_str name = adm_string(r, flex);
    bool denied = !auth_allowed(req, ACL_RES_TOPIC, name.p, name.len > 0 ? (size_t)name.len : 0,
                                ACL_OP_DELETE);
    struct topic *tp = denied ? NULL : topic_find(req->b->topics, name.p, (size_t)name.len);
    int32_t j, np = adm_array(r, flex, 12);

    adm_w_str(w, flex, name); /* Name */
    kc_w_array(w, flex, np);  /* Partitions */
    for (j = 0; j < np; j++) {
        int32_t index = kc_i32(r);
        int64_t offset = kc_i64(r), low;
        int16_t err = dr_partition(req, n, tp, denied, index, offset, &low);

        kc_skip_tags(r, flex);
        kc_w_i32(w, index); /* PartitionIndex */
        kc_w_i64(w, low);   /* LowWatermark */
        kc_w_i16(w, err);   /* ErrorCode */
        kc_w_tags(w, flex);
    }
    kc_skip_tags(r, flex);
    kc_w_tags(w, flex);
}

int kapi_delete_records(struct kreq *req, kc_writer *w)
{
    kc_reader body = req->r, end;
    int32_t i, n = dr_scan(req);

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, req->flexible, 2);
    kc_w_array(w, req->flexible, n);
    for (i = 0; i < n; i++)
        dr_topic(req, n, w);
    kc_w_tags(w, req->flexible);
    req->r = end;
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- DescribeConfigs (32) */

struct dc_res {
    int8_t type;   /* ResourceType */
    kc_str name;   /* ResourceName */
    int32_t nkeys; /* ConfigurationKeys count; -1 when null (all configs) */
};

/* Reads one DescribeConfigsResource; its keys go to keys (room for ADM_MAX_CFGS) when
 * keys is not NULL. */
static void dc_read_res(kc_reader *r, bool flex, struct dc_res *res, kc_str *keys)
{
    int32_t i;

    res->type = kc_i8(r);
    res->name = adm_string(r, flex);
    res->nkeys = kc_array(r, flex, 1);
    for (i = 0; i < res->nkeys && kc_ok(r); i++) {
        kc_str k = adm_string(r, flex);

        if (keys && i < ADM_MAX_CFGS)
            keys[i] = k;
    }
    kc_skip_tags(r, flex);
}

/* Pass 1. Returns the resource count or -1; sets the IncludeSynonyms and
 * IncludeDocumentation flags in e. */
static int32_t dc_scan(struct kreq *req, struct cfg_emit *e)
{
    kc_reader *r = &req->r;
    struct dc_res res;
    int32_t i, n = adm_array(r, req->flexible, 3);

    for (i = 0; i < n && kc_ok(r); i++)
        dc_read_res(r, req->flexible, &res, NULL);
    e->synonyms = req->api_version >= 1 ? kc_bool(r) : false;
    e->docs = req->api_version >= 3 ? kc_bool(r) : false;
    kc_skip_tags(r, req->flexible);
    return kc_ok(r) ? n : -1;
}

/* Finds the resource; returns an error code when it cannot be described. */
static int16_t dc_check(struct kreq *req, int32_t n, const struct dc_res *res, struct topic **tp,
                        char *msg, size_t len)
{
    *tp = NULL;
    if (n > ADM_MAX_ENTRIES || res->nkeys > ADM_MAX_CFGS)
        return adm_fail(KERR_INVALID_REQUEST, msg, len,
                        "at most %d resources and %d keys per request", ADM_MAX_ENTRIES,
                        ADM_MAX_CFGS);
    int16_t aerr = adm_res_auth(req, res->type, res->name, ACL_OP_DESCRIBE_CONFIGS);
    if (aerr)
        return adm_fail(aerr, msg, len, "Authorization failed.");
    if (res->type == RES_BROKER) {
        if (!adm_is_this_broker(req->b, res->name))
            return adm_fail(KERR_INVALID_REQUEST, msg, len,
                            "Unexpected broker id, expected %" PRId32 " or empty "
                            "string, but received %.*s",
                            req->b->cfg.node_id, (int)res->name.len, res->name.p);
        return KERR_NONE;
    }
    if (res->type == RES_GROUP)
        return res->name.len > 0 ? KERR_NONE
                                 : adm_fail(KERR_INVALID_REQUEST, msg, len, "Invalid group id");
    if (res->type != RES_TOPIC)
        return adm_fail(KERR_INVALID_REQUEST, msg, len, "Unsupported resource type %d",
                        (int)res->type);
    *tp = topic_find(req->b->topics, res->name.p, (size_t)res->name.len);
    if (!*tp)
        return adm_fail(KERR_UNKNOWN_TOPIC_OR_PARTITION, msg, len, "Topic %.*s does not exist.",
                        (int)res->name.len, res->name.p);
    return KERR_NONE;
}

/* Writes one DescribeConfigsResult. */
static void dc_w_result(struct kreq *req, int32_t n, const struct dc_res *res, kc_str *keys,
                        struct cfg_emit *e, kc_writer *w)
{
    char msg[ADM_MSG] = "";
    struct topic *tp;
    int16_t err = dc_check(req, n, res, &tp, msg, sizeof msg);

    kc_w_i16(w, err);                       /* ErrorCode */
    adm_w_msg(w, e->flex, err, msg);        /* ErrorMessage */
    kc_w_i8(w, res->type);                  /* ResourceType */
    adm_w_str(w, e->flex, res->name);       /* ResourceName */
    e->keys = res->nkeys > 0 ? keys : NULL; /* null or empty: every config */
    e->nkeys = res->nkeys;
    if (err != KERR_NONE)
        kc_w_array(w, e->flex, 0); /* Configs */
    else if (tp)
        cfg_w_topic(e, req->b->topics, tp, w);
    else if (res->type == RES_GROUP)
        cfg_w_group(e, req->b, res->name, w);
    else
        cfg_w_broker(e, &req->b->cfg, w);
    kc_w_tags(w, e->flex);
}

int kapi_describe_configs(struct kreq *req, kc_writer *w)
{
    struct cfg_emit e = {.api_key = 32, .version = req->api_version, .flex = req->flexible};
    kc_reader body = req->r, end;
    struct dc_res res;
    kc_str *keys;
    int32_t i, n = dc_scan(req, &e);

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    keys = calloc(ADM_MAX_CFGS, sizeof *keys);
    if (!keys) {
        w->err = KC_ENOMEM;
        return KAPI_DONE;
    }
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, req->flexible, 3);
    kc_w_array(w, req->flexible, n);
    for (i = 0; i < n; i++) {
        dc_read_res(&req->r, req->flexible, &res, keys);
        dc_w_result(req, n, &res, keys, &e, w);
    }
    kc_w_tags(w, req->flexible);
    req->r = end;
    free(keys);
    return KAPI_DONE;
}

/* ------------------------------------------- AlterConfigs (33), IncrementalAlterConfigs (44) */

struct ac_res {
    int8_t type; /* ResourceType */
    kc_str name; /* ResourceName */
    int32_t n;   /* Configs count */
    int16_t err; /* a problem found while reading the configs */
    char msg[ADM_MSG];
};

/* Reads one AlterableConfig into ch (when ch is not NULL), checking the operation. */
static void ac_read_cfg(kc_reader *r, bool flex, bool incremental, struct ac_res *res,
                        struct topic_cfg_change *ch)
{
    kc_str k = adm_string(r, flex);              /* Name */
    int8_t op = incremental ? kc_i8(r) : OP_SET; /* ConfigOperation */
    kc_str v = kc_string(r, flex);               /* Value, nullable */

    kc_skip_tags(r, flex);
    if (!ch || !kc_ok(r) || res->err)
        return;
    if (op == OP_APPEND || op == OP_SUBTRACT)
        res->err = adm_fail(KERR_INVALID_CONFIG, res->msg, sizeof res->msg,
                            "APPEND and SUBTRACT apply only to list configs; %.*s is not one "
                            "here",
                            (int)k.len, k.p);
    else if (op != OP_SET && op != OP_DELETE)
        res->err = adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                            "Unknown config operation %d", (int)op);
    else if (incremental && op == OP_SET && v.len < 0)
        res->err = adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                            "Null value not supported for : %.*s", (int)k.len, k.p);
    *ch = (struct topic_cfg_change){k.p, (size_t)k.len, op == OP_DELETE || v.len < 0 ? NULL : v.p,
                                    (size_t)(v.len > 0 ? v.len : 0)};
}

/* Reads one AlterConfigsResource; changes go to ch (room for ADM_MAX_CFGS) when ch is
 * not NULL. */
static void ac_read_res(kc_reader *r, bool flex, bool incremental, struct ac_res *res,
                        struct topic_cfg_change *ch)
{
    int32_t i;

    res->type = kc_i8(r);
    res->name = adm_string(r, flex);
    res->n = adm_array(r, flex, incremental ? 3 : 2);
    res->err = KERR_NONE;
    res->msg[0] = '\0';
    if (ch && res->n > ADM_MAX_CFGS)
        res->err = adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                            "at most %d configs per resource", ADM_MAX_CFGS);
    for (i = 0; i < res->n && kc_ok(r); i++)
        ac_read_cfg(r, flex, incremental, res, ch && i < ADM_MAX_CFGS ? &ch[i] : NULL);
    kc_skip_tags(r, flex);
}

/* Pass 1. Returns the resource count or -1, and reads ValidateOnly. */
static int32_t ac_scan(struct kreq *req, bool incremental, bool *validate_only)
{
    kc_reader *r = &req->r;
    struct ac_res res;
    int32_t i, n = adm_array(r, req->flexible, 4);

    for (i = 0; i < n && kc_ok(r); i++)
        ac_read_res(r, req->flexible, incremental, &res, NULL);
    *validate_only = kc_bool(r);
    kc_skip_tags(r, req->flexible);
    return kc_ok(r) ? n : -1;
}

/* Returns the index of a key named twice in ch, or -1. */
static int32_t ac_dup_key(const struct topic_cfg_change *ch, int32_t n)
{
    int32_t i, j;

    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (ch[i].key_len == ch[j].key_len && memcmp(ch[i].key, ch[j].key, ch[i].key_len) == 0)
                return i;
    return -1;
}

static int16_t ac_apply(struct kreq *req, int32_t n, struct ac_res *res,
                        const struct topic_cfg_change *ch, bool incremental, bool validate_only)
{
    struct topic *tp;
    int32_t d;

    if (n > ADM_MAX_ENTRIES)
        return adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                        "at most %d resources per request", ADM_MAX_ENTRIES);
    int16_t aerr = adm_res_auth(req, res->type, res->name, ACL_OP_ALTER_CONFIGS);
    if (aerr)
        return adm_fail(aerr, res->msg, sizeof res->msg, "Authorization failed.");
    if (res->type == RES_BROKER)
        return adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                        "Broker configs are static in this broker; set them in its config "
                        "file or environment");
    if (res->type == RES_GROUP && !incremental)
        return adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                        "Group configs are set with IncrementalAlterConfigs");
    if (res->type != RES_TOPIC && res->type != RES_GROUP)
        return adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                        "Unsupported resource type %d", (int)res->type);
    if (res->err)
        return res->err;
    if ((d = ac_dup_key(ch, res->n)) >= 0)
        return adm_fail(KERR_INVALID_REQUEST, res->msg, sizeof res->msg,
                        "Duplicate config key %.*s", (int)ch[d].key_len, ch[d].key);
    if (res->type == RES_GROUP)
        return kapi_share_group_cfg_alter(req->b, res->name, ch, res->n, validate_only, res->msg,
                                          sizeof res->msg);
    tp = topic_find(req->b->topics, res->name.p, (size_t)res->name.len);
    if (!tp)
        return adm_fail(KERR_UNKNOWN_TOPIC_OR_PARTITION, res->msg, sizeof res->msg,
                        "Topic %.*s does not exist.", (int)res->name.len, res->name.p);
    return adm_kerr(topic_alter_config(req->b->topics, tp, ch, res->n, incremental, validate_only,
                                       res->msg, sizeof res->msg));
}

/* AlterConfigs and IncrementalAlterConfigs share a response: AlterConfigsResourceResponse. */
static int ac_handle(struct kreq *req, kc_writer *w, bool incremental)
{
    kc_reader body = req->r, end;
    struct topic_cfg_change *ch;
    struct ac_res res;
    bool validate_only = false, flex = req->flexible;
    int32_t i, n = ac_scan(req, incremental, &validate_only);

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    ch = calloc(ADM_MAX_CFGS, sizeof *ch);
    if (!ch) {
        w->err = KC_ENOMEM;
        return KAPI_DONE;
    }
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    adm_array(&req->r, flex, 4);
    kc_w_array(w, flex, n);
    for (i = 0; i < n; i++) {
        int16_t err;

        ac_read_res(&req->r, flex, incremental, &res, ch);
        err = ac_apply(req, n, &res, ch, incremental, validate_only);
        kc_w_i16(w, err);                 /* ErrorCode */
        adm_w_msg(w, flex, err, res.msg); /* ErrorMessage */
        kc_w_i8(w, res.type);             /* ResourceType */
        adm_w_str(w, flex, res.name);     /* ResourceName */
        kc_w_tags(w, flex);
    }
    kc_w_tags(w, flex);
    req->r = end;
    free(ch);
    return KAPI_DONE;
}

int kapi_alter_configs(struct kreq *req, kc_writer *w)
{
    return ac_handle(req, w, false);
}

int kapi_incremental_alter_configs(struct kreq *req, kc_writer *w)
{
    return ac_handle(req, w, true);
}
