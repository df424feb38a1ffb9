/* main.c: sluice-broker. Reads configuration, opens the store, starts the Kafka and
 * admin listeners on one event loop, and drains cleanly on SIGTERM. */
#include "acl.h"
#include "admin.h"
#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "fetch.h"
#include "group.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "principals.h"
#include "quota.h"
#include "retention.h"
#include "store.h"
#include "dataset.h"
#include "kapi_sasl.h"
#include "kapi_share.h"
#include "sgroup.h"
#include "share.h"
#include "share_view.h"
#include "syncer.h"
#include "tiered.h"
#include "topic.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DRAIN_POLL_US = 20000, DRAIN_MAX_US = 10000000 };

struct runtime {
    struct broker b;
    struct retention *retention;
    int sigfd;
    struct ev_timer drain;
    int64_t drain_started;
};

/* --config can come from the environment or argv; it is read before both are
 * applied, so flags still win over the file. */
static int load_config(struct config *c, int argc, char **argv)
{
    char err[512];
    config_defaults(c);
    const char *file = getenv("SLUICE_CONFIG");
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config"))
            file = argv[i + 1];
    int rc = 0;
    if (file && *file)
        rc = config_load_file(c, file, err, sizeof err);
    if (rc == 0)
        rc = config_load_env(c, err, sizeof err);
    if (rc == 0)
        rc = config_load_args(c, argc, argv, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "sluice-broker: %s\n", err);
    return rc;
}

/* The cluster id is made once and kept in the store. */
static int load_cluster_id(struct broker *b)
{
    static const char key[] = "cluster_id";
    if (b->cfg.cluster_id[0])
        return 0;
    size_t vl;
    int err;
    char *v = store_get(b->store, STORE_CF_META, key, sizeof key - 1, &vl, &err);
    if (err)
        return -1;
    if (v && vl > 0 && vl < sizeof b->cfg.cluster_id) {
        memcpy(b->cfg.cluster_id, v, vl);
        b->cfg.cluster_id[vl] = 0;
        free(v);
        return 0;
    }
    free(v);
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[22];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    for (int i = 0; i < 22; i++)
        b->cfg.cluster_id[i] = abc[rnd[i] & 63];
    b->cfg.cluster_id[22] = 0;
    return store_put(b->store, STORE_CF_META, key, sizeof key - 1, b->cfg.cluster_id, 22);
}

static int set_advertised(struct broker *b)
{
    const char *a = b->cfg.advertised[0] ? b->cfg.advertised : b->cfg.kafka_listen;
    if (config_split_hostport(a, b->adv_host, sizeof b->adv_host, &b->adv_port) < 0) {
        log_error("bad listener address '%s' (want HOST:PORT)", a);
        return -1;
    }
    if (!b->adv_host[0] || !strcmp(b->adv_host, "0.0.0.0"))
        gethostname(b->adv_host, sizeof b->adv_host);
    return 0;
}

/* SASL users, ACLs and the authorizer. The ACLs are kept (and can be managed) without
 * an authorizer; they are enforced only with authorizer=acl. */
static int open_security(struct broker *b)
{
    const char *az = b->cfg.authorizer;
    if (*az && strcmp(az, "none") && strcmp(az, "acl")) {
        log_error("authorizer %s: want none or acl", az);
        return -1;
    }
    if (!(b->principals = principals_open(b->store, b->cfg.sasl_scram_iterations)) ||
        !(b->sasl_jobs = sasl_jobs_new(b->loop)) ||
        !(b->quotas = quotas_open(b->store, b->cfg.quota_produce_bps, b->cfg.quota_fetch_bps)) ||
        !(b->acls = acls_open(b->store, b->cfg.super_users)))
        return -1;
    b->authorize = !strcmp(az, "acl");
    if (b->authorize)
        log_info("authorizer: acl (%zu rules, %zu principals, super users: %s)",
                 acls_count(b->acls), principals_count(b->principals),
                 *b->cfg.super_users ? b->cfg.super_users : "none");
    return 0;
}

static void on_drain_tick(struct ev_loop *l, void *arg)
{
    struct runtime *rt = arg;
    int pending = server_pending_slots(rt->b.server);
    if (pending == 0 || ev_now_us() - rt->drain_started > DRAIN_MAX_US) {
        if (pending)
            log_warn("drain: giving up on %d pending responses", pending);
        ev_stop(l);
        return;
    }
    ev_timer_start(l, &rt->drain, DRAIN_POLL_US);
}

static void on_signal(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct runtime *rt = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
        return;
    if (si.ssi_signo == SIGHUP) {
        log_info("SIGHUP: reloading TLS certificates");
        server_reload_tls(rt->b.server);
        admin_reload_tls(rt->b.admin);
        return;
    }
    if (rt->b.draining)
        return;
    log_info("signal %u: draining", si.ssi_signo);
    rt->b.draining = true;
    rt->b.ready = false;
    server_stop_accepting(rt->b.server);
    fetcher_release_all(rt->b.fetcher);
    share_fetcher_release_all(rt->b.sfetcher);
    rt->drain_started = ev_now_us();
    ev_timer_init(&rt->drain, on_drain_tick, rt);
    ev_timer_start(l, &rt->drain, 0);
}

/* Blocks the signals the loop reads through a signalfd. This must happen before any
 * thread starts (RocksDB's among them), or a thread would take SIGTERM's default. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int setup_signals(struct runtime *rt)
{
    sigset_t set;
    block_signals(&set);
    rt->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return rt->sigfd < 0 ? -1 : ev_add(rt->b.loop, rt->sigfd, EV_READ, on_signal, rt);
}

/* Opens everything in dependency order. Returns 0 or -1 (logged). */
static int start(struct runtime *rt)
{
    struct broker *b = &rt->b;
    char *err = NULL;
    if (mkdir(b->cfg.data_dir, 0755) < 0 && errno != EEXIST) {
        log_error("cannot create data dir %s: %s", b->cfg.data_dir, strerror(errno));
        return -1;
    }
    struct store_opts so = {.wal_segment_bytes = (uint64_t)b->cfg.wal_segment_bytes};
    if (!(b->store = store_open_opts(b->cfg.data_dir, &so, &err))) {
        log_error("cannot open store in %s: %s", b->cfg.data_dir, err);
        free(err);
        return -1;
    }
    if (load_cluster_id(b) < 0 || kafka_producer_ids_load(b) < 0 || set_advertised(b) < 0 ||
        open_security(b) < 0)
        return -1;
    if (!(b->metrics = metrics_new()) || !(b->topics = topics_new(b)) ||
        topics_load(b->topics) < 0 || !(b->groups = groups_new(b)) ||
        !(b->shares = shares_new(b)) || !(b->views = sviews_new(b)) ||
        !(b->sgroups = sgroups_new(b)) || !(b->sfetcher = share_fetcher_new(b)) ||
        !(b->syncer = syncer_new(b)) ||
        !(b->datasets = datasets_new(b)) ||
        !(b->fetcher = fetcher_new(b)) || !server_new(b) ||
        !(b->tiered = tiered_new(b)) ||
        !(rt->retention = retention_new(b)) || !(b->admin = admin_new(b)) ||
        setup_signals(rt) < 0)
        return -1;
    return 0;
}

static void stop(struct runtime *rt)
{
    struct broker *b = &rt->b;
    admin_free(b->admin);
    retention_free(rt->retention);
    server_free(b->server);
    sasl_jobs_free(b->sasl_jobs); /* after the server: no slot waits on a check */
    fetcher_free(b->fetcher);
    tiered_free(b->tiered); /* after the server: its pending ListOffsets are cancelled */
    datasets_free(b->datasets); /* after the server: no fetch waits on a block */
    share_fetcher_free(b->sfetcher);
    syncer_free(b->syncer);
    sgroups_free(b->sgroups);
    sviews_free(b->views);
    shares_free(b->shares);
    groups_free(b->groups);
    topics_free(b->topics);
    acls_free(b->acls);
    quotas_free(b->quotas);
    principals_free(b->principals);
    if (b->store)
        store_sync(b->store);
    store_close(b->store);
    metrics_free(b->metrics);
    if (rt->sigfd > 0)
        close(rt->sigfd);
    ev_free(b->loop);
}

int main(int argc, char **argv)
{
    static struct runtime rt;
    sigset_t set;
    block_signals(&set);
    int rc = load_config(&rt.b.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_min_level = rt.b.cfg.log_level;
    if (!(rt.b.loop = ev_new())) {
        log_error("cannot create the event loop");
        return 1;
    }
    rt.sigfd = -1;
    if (start(&rt) < 0) {
        stop(&rt);
        return 1;
    }
    rt.b.ready = true;
    log_info("sluice-broker ready: kafka %s (advertised %s:%d), admin %s, data %s",
             rt.b.cfg.listeners[0] ? rt.b.cfg.listeners : rt.b.cfg.kafka_listen, rt.b.adv_host,
             rt.b.adv_port, rt.b.cfg.admin_listen, rt.b.cfg.data_dir);
    ev_run(rt.b.loop);
    stop(&rt);
    log_info("sluice-broker stopped");
    return 0;
}
