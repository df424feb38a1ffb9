/* fuzz_broker.h: the scratch broker the stateful fuzz targets (fuzz_frame, fuzz_admin_json)
 * run against: unit_broker.h's broker plus what main.c opens besides (share groups, share
 * fetches, datasets, tiered storage, ACLs, principals, quotas; not the PLAIN worker: the
 * check runs inline, deterministically), with users, rules and topics for
 * the inputs to meet. It persists across inputs, as a live broker would, and is rebuilt
 * from nothing every FZB_RESET inputs so that what inputs create stays bounded.
 * Header-only: each target includes it once. */
#ifndef SLUICE_FUZZ_BROKER_H
#define SLUICE_FUZZ_BROKER_H

#include "../unit/unit_broker.h"

#include "acl.h"
#include "dataset.h"
#include "kapi_share.h"
#include "principals.h"
#include "quota.h"
#include "scram.h"
#include "sgroup.h"
#include "tiered.h"

enum { FZB_RESET = 4096 };

/* alice and bob have the password "<name>-secret", salted with FZB_SALT for both SCRAM
 * mechanisms, so a seed can carry a valid proof. */
static const uint8_t FZB_SALT[16] = "fuzz-salt-16-byt";

static struct ub *fzb;
static unsigned fzb_inputs;

static inline void fzb_user(struct principals *p, const char *name)
{
    char pw[64];
    struct scram_cred c;
    int n = snprintf(pw, sizeof pw, "%s-secret", name);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (scram_cred_derive(m, pw, (size_t)n, FZB_SALT, sizeof FZB_SALT, SCRAM_MIN_ITERATIONS,
                              &c) < 0 ||
            principals_set_cred(p, name, m, &c) < 0)
            abort();
}

static inline void fzb_acl(struct acls *a, int8_t res, const char *name, int8_t pat,
                           const char *who, int8_t op, int8_t perm)
{
    struct acl_binding r = {res, name, pat, who, "*", op, perm};
    if (acls_add(a, &r) < 0)
        abort();
}

/* alice owns t* and g*, may read v*, and is denied writes to t-deny; bob may describe
 * every topic; everyone may read every group; admin is a super user. Produce and fetch
 * quotas are 1 MB/s, so throttling happens. */
static inline void fzb_security(struct broker *b)
{
    if (!(b->principals = principals_open(b->store, SCRAM_MIN_ITERATIONS)) ||
        !(b->acls = acls_open(b->store, "User:admin")) ||
        !(b->quotas = quotas_open(b->store, 1 << 20, 1 << 20)))
        abort();
    fzb_user(b->principals, "alice");
    fzb_user(b->principals, "bob");
    fzb_acl(b->acls, ACL_RES_TOPIC, "t", ACL_PAT_PREFIXED, "User:alice", ACL_OP_ALL,
            ACL_PERM_ALLOW);
    fzb_acl(b->acls, ACL_RES_TOPIC, "v", ACL_PAT_PREFIXED, "User:alice", ACL_OP_READ,
            ACL_PERM_ALLOW);
    fzb_acl(b->acls, ACL_RES_TOPIC, "t-deny", ACL_PAT_LITERAL, "User:alice", ACL_OP_WRITE,
            ACL_PERM_DENY);
    fzb_acl(b->acls, ACL_RES_GROUP, "g", ACL_PAT_PREFIXED, "User:alice", ACL_OP_ALL,
            ACL_PERM_ALLOW);
    fzb_acl(b->acls, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_PAT_LITERAL, "User:alice",
            ACL_OP_DESCRIBE, ACL_PERM_ALLOW);
    fzb_acl(b->acls, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:bob", ACL_OP_DESCRIBE,
            ACL_PERM_ALLOW);
    fzb_acl(b->acls, ACL_RES_GROUP, "*", ACL_PAT_LITERAL, "User:*", ACL_OP_READ, ACL_PERM_ALLOW);
}

/* Topics t (2 partitions) and t-deny, and v with its shared view v.shared (4 partitions). */
static inline void fzb_topics(struct ub *u)
{
    static const struct topic_cfg_change shared[] = {{"shared.virtual.partitions", 25, "4", 1}};
    struct topic *t = NULL;
    char msg[256];
    ub_topic(u, "t", 2);
    ub_topic(u, "t-deny", 1);
    if (topic_create(u->b.topics, "v", 1, 1, shared, 1, false, &t, msg, sizeof msg) != KERR_NONE ||
        share_view_setup(&u->b, t, msg, sizeof msg) < 0)
        abort();
}

static inline void fzb_open(void)
{
    if (!(fzb = calloc(1, sizeof *fzb)))
        abort();
    ub_init(fzb);
    log_min_level = LOG_ERROR + 1; /* malformed input is expected: keep the log quiet */
    struct broker *b = &fzb->b;
    fzb_security(b);
    if (!(b->sgroups = sgroups_new(b)) || !(b->sfetcher = share_fetcher_new(b)) ||
        !(b->datasets = datasets_new(b)) || !(b->tiered = tiered_new(b)))
        abort();
    fzb_topics(fzb);
}

/* Frees the broker in main.c's stop() order and removes its directory. */
static inline void fzb_close(void)
{
    struct broker *b = &fzb->b;
    tiered_free(b->tiered);
    datasets_free(b->datasets);
    share_fetcher_free(b->sfetcher);
    sgroups_free(b->sgroups);
    acls_free(b->acls);
    principals_free(b->principals);
    quotas_free(b->quotas);
    b->quotas = NULL;
    b->tiered = NULL;
    b->datasets = NULL;
    b->sfetcher = NULL;
    b->sgroups = NULL;
    b->acls = NULL;
    b->principals = NULL;
    ub_stop(fzb);
    ub_rmdir(fzb->dir);
    free(fzb);
    fzb = NULL;
}

static inline void fzb_atexit(void)
{
    if (fzb)
        fzb_close();
}

/* The broker for the next input: opened on the first, rebuilt every FZB_RESET. */
static inline struct broker *fzb_get(void)
{
    static bool registered;
    if (fzb && ++fzb_inputs % FZB_RESET == 0)
        fzb_close();
    if (!fzb)
        fzb_open();
    if (!registered)
        atexit(fzb_atexit);
    registered = true;
    return &fzb->b;
}

#endif
