/* broker.h: the broker context handed to every module. It holds configuration and the
 * long-lived parts; there are no other globals. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;
struct store;
struct topics;
struct metrics;
struct syncer;
struct admin;
struct server;
struct fetcher;
struct groups;
struct shares;
struct sviews;
struct sgroups;
struct share_fetcher;
struct datasets;
struct tiered;
struct acls;
struct principals;
struct sasl_jobs;
struct quotas;

struct broker {
    struct config cfg;
    struct ev_loop *loop;
    struct store *store;
    struct topics *topics;
    struct metrics *metrics;
    struct syncer *syncer;
    struct admin *admin;
    struct server *server;
    struct fetcher *fetcher;
    struct groups *groups;
    struct shares *shares; /* share-group state (share.h) */
    struct sviews *views;  /* shared views for classic consumers (share_view.h) */
    struct sgroups *sgroups;         /* share-group members and sessions (sgroup.h) */
    struct share_fetcher *sfetcher;  /* parked ShareFetch requests (kapi_share.h) */
    struct datasets *datasets;       /* dataset topics and their block cache (dataset.h) */
    struct tiered *tiered;           /* storage.mode tiered: uploads, remote reads (tiered.h) */
    struct acls *acls;               /* the ACLs (acl.h); enforced when authorize is set */
    bool authorize;                  /* authorizer=acl */
    struct principals *principals;   /* SASL users (principals.h) */
    struct sasl_jobs *sasl_jobs;     /* PLAIN password checks off the loop (kapi_sasl.h) */
    struct quotas *quotas;           /* byte-rate quotas per principal (quota.h) */
    char adv_host[256]; /* advertised host and port */
    int adv_port;
    bool ready;        /* serving: /readyz answers 200 */
    bool draining;     /* SIGTERM seen */
    int64_t next_producer_id; /* next id InitProducerId hands out */
    int64_t producer_id_limit; /* end of the block reserved in the store */
};

#endif
