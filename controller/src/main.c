/* main.c: sluice-controller. Reads flags and environment, then runs one event loop
 * (curl_multi_poll) that drives the list/watch streams of every kind and the metrics
 * port, a Lease elector thread, and a small pool of reconcile workers.
 *
 *   sluice-controller [--kubeconfig FILE] [--namespace NS] [--broker-admin URL]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <strings.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl_ctrl.h"
#include "ctl_httpd.h"
#include "ctl_informer.h"
#include "ctl_leader.h"
#include "ctl_util.h"
#include "ctl_worker.h"

static int sig_pipe[2] = {-1, -1};
static struct ctl_ctrl *sig_ctrl;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig_ctrl)
        __atomic_store_n(&sig_ctrl->stopping, 1, __ATOMIC_RELEASE);
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], "x", 1) < 0) {
        /* nothing to do: the flag is set */
    }
    errno = saved;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static bool env_bool(const char *name, bool def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    return !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sluice-controller [--kubeconfig FILE] [--namespace NS] [--broker-admin URL]\n"
            "                         [--metrics-listen HOST:PORT] [--log-level debug|info|warn]\n"
            "environment: SLUICE_KUBECONFIG SLUICE_NAMESPACE SLUICE_BROKER_ADMIN SLUICE_BROKER_TOKEN\n"
            "  SLUICE_BOOTSTRAP SLUICE_METRICS_LISTEN SLUICE_RESYNC_SECONDS SLUICE_LEADER_ELECTION\n"
            "  SLUICE_POD_NAME SLUICE_LEASE_NAME SLUICE_LEASE_NAMESPACE SLUICE_WORKERS SLUICE_QPS\n"
            "  SLUICE_WATCH_TIMEOUT_SECONDS SLUICE_LOG_LEVEL SLUICE_JOB_KINDS\n");
}

/* Fills cfg from the environment, then the flags. Returns 0, 1 for --help, -1 on error. */
static int parse_config(struct ctl_config *cfg, int argc, char **argv, const char **log_level)
{
    static char host[256], bootstrap[300];
    cfg->kubeconfig = env_or("SLUICE_KUBECONFIG", NULL);
    cfg->namespace = env_or("SLUICE_NAMESPACE", NULL);
    cfg->broker_admin = env_or("SLUICE_BROKER_ADMIN", "http://127.0.0.1:8080");
    cfg->broker_token = env_or("SLUICE_BROKER_TOKEN", NULL);
    cfg->metrics_listen = env_or("SLUICE_METRICS_LISTEN", "0.0.0.0:8081");
    cfg->resync_seconds = atoi(env_or("SLUICE_RESYNC_SECONDS", "300"));
    cfg->leader_election = env_bool("SLUICE_LEADER_ELECTION", true);
    if (gethostname(host, sizeof host - 1) < 0)
        snprintf(host, sizeof host, "sluice-controller");
    cfg->pod_name = env_or("SLUICE_POD_NAME", host);
    cfg->lease_name = env_or("SLUICE_LEASE_NAME", "sluice-controller");
    cfg->lease_namespace = env_or("SLUICE_LEASE_NAMESPACE", NULL);
    cfg->workers = atoi(env_or("SLUICE_WORKERS", "4"));
    cfg->qps = atof(env_or("SLUICE_QPS", "200"));
    cfg->burst = cfg->qps * 2;
    cfg->watch_timeout_s = atoi(env_or("SLUICE_WATCH_TIMEOUT_SECONDS", "300"));
    cfg->broker_timeout_ms = atoi(env_or("SLUICE_BROKER_TIMEOUT_MS", "10000"));
    *log_level = env_or("SLUICE_LOG_LEVEL", "info");
    /* the training jobs whose suspension or Kueue admission warms a dataset */
    const char *jk = getenv("SLUICE_JOB_KINDS");
    char err[160];
    if (ctl_job_kinds_parse(jk ? jk : "jobs,pytorchjobs,jobsets,workloads", &cfg->job_kinds, err,
                            sizeof err) < 0) {
        fprintf(stderr, "sluice-controller: SLUICE_JOB_KINDS: %s\n", err);
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 1;
        const char **dst = !strcmp(a, "--kubeconfig")       ? &cfg->kubeconfig
                           : !strcmp(a, "--namespace")      ? &cfg->namespace
                           : !strcmp(a, "--broker-admin")   ? &cfg->broker_admin
                           : !strcmp(a, "--metrics-listen") ? &cfg->metrics_listen
                           : !strcmp(a, "--log-level")      ? log_level
                                                            : NULL;
        if (!dst || !v) {
            fprintf(stderr, "sluice-controller: unknown flag or missing value: %s\n", a);
            return -1;
        }
        *dst = v;
        i++;
    }
    const char *bs = env_or("SLUICE_BOOTSTRAP", NULL);
    if (!bs) {
        /* the broker's host with the Kafka port */
        const char *h = strstr(cfg->broker_admin, "://");
        h = h ? h + 3 : cfg->broker_admin;
        size_t n = strcspn(h, ":/");
        snprintf(bootstrap, sizeof bootstrap, "%.*s:9092", (int)n, h);
        bs = bootstrap;
    }
    cfg->bootstrap = bs;
    if (cfg->resync_seconds < 0)
        cfg->resync_seconds = 0;
    if (cfg->workers < 1 || cfg->workers > 64)
        cfg->workers = 4;
    if (cfg->watch_timeout_s < 5)
        cfg->watch_timeout_s = 300;
    if (cfg->broker_timeout_ms < 100)
        cfg->broker_timeout_ms = 10000;
    return 0;
}

static bool ready_cb(void *arg)
{
    struct ctl_ctrl *c = arg;
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < CTL_NKINDS; k++)
        ok = ok && c->synced[k];
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Runs the event loop until SIGTERM. */
static void run_loop(struct ctl_ctrl *c, struct ctl_informer *infs, struct ctl_httpd *hd)
{
    CURLM *m = curl_multi_init();
    int64_t next_resync = ctl_now_ms() + (int64_t)c->cfg.resync_seconds * 1000;
    struct pollfd fds[2 + CTL_HTTPD_MAX_CLIENTS];
    struct curl_waitfd wfds[2 + CTL_HTTPD_MAX_CLIENTS];
    while (!ctl_stopping(c)) {
        int64_t now = ctl_now_ms(), wait = 1000;
        for (int k = 0; k < CTL_NKINDS; k++) {
            ctl_informer_tick(&infs[k], m, now);
            int64_t w = ctl_informer_wait(&infs[k], now);
            if (w >= 0 && w < wait)
                wait = w;
        }
        if (c->cfg.resync_seconds > 0 && now >= next_resync) {
            next_resync = now + (int64_t)c->cfg.resync_seconds * 1000;
            if (ctl_is_leader(c)) {
                pthread_mutex_lock(&c->mu);
                ctl_enqueue_all_locked(c);
                pthread_mutex_unlock(&c->mu);
                ctl_debug("periodic resync queued every object");
            }
        }
        int n = 0;
        fds[n++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
        n += ctl_httpd_fds(hd, fds + n);
        for (int i = 0; i < n; i++)
            wfds[i] = (struct curl_waitfd){.fd = fds[i].fd, .events = CURL_WAIT_POLLIN};
        int running = 0, numfds = 0;
        curl_multi_poll(m, wfds, (unsigned)n, (int)(wait > 0 ? wait : 1), &numfds);
        for (int i = 0; i < n; i++)
            fds[i].revents = (short)(wfds[i].revents & CURL_WAIT_POLLIN ? POLLIN : 0);
        if (fds[0].revents) {
            char buf[16];
            if (read(sig_pipe[0], buf, sizeof buf) < 0) {
                /* drained or interrupted */
            }
        }
        ctl_httpd_handle(hd, fds + 1, n - 1);
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct ctl_informer *inf = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&inf);
            CURLcode rc = msg->data.result;
            if (inf)
                ctl_informer_done(inf, m, rc);
        }
    }
    ctl_info("stopping: closing watches");
    for (int k = 0; k < CTL_NKINDS; k++)
        ctl_informer_free(&infs[k], m);
    curl_multi_cleanup(m);
}

static int ctrl_init(struct ctl_ctrl *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    for (int k = 0; k < CTL_NKINDS; k++)
        if (ctl_cache_init(&c->cache[k]) < 0)
            return -1;
    if (ctl_cache_init(&c->warmed) < 0)
        return -1;
    for (int k = 0; k < CTL_NRECONCILED; k++)
        if (ctl_queue_init(&c->queue[k], c->cfg.qps, c->cfg.burst, 1000, 300000) < 0)
            return -1;
    return 0;
}

static void ctrl_free(struct ctl_ctrl *c)
{
    for (int k = 0; k < CTL_NKINDS; k++)
        ctl_cache_free(&c->cache[k]);
    ctl_cache_free(&c->warmed);
    for (int k = 0; k < CTL_NRECONCILED; k++)
        ctl_queue_free(&c->queue[k]);
    ctl_kauth_free(&c->auth);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

int main(int argc, char **argv)
{
    static struct ctl_ctrl ctrl;
    static struct ctl_informer infs[CTL_NKINDS];
    static struct ctl_httpd hd = {.lfd = -1};
    struct ctl_worker *workers = NULL;
    pthread_t leader_thread;
    const char *log_level;
    char err[512];
    int rc = parse_config(&ctrl.cfg, argc, argv, &log_level);
    if (rc != 0) {
        usage();
        return rc > 0 ? 0 : 2;
    }
    ctl_log_min = !strcmp(log_level, "debug") ? CTL_LOG_DEBUG
                  : !strcmp(log_level, "warn") ? CTL_LOG_WARN
                  : !strcmp(log_level, "error") ? CTL_LOG_ERROR
                                                : CTL_LOG_INFO;
    curl_global_init(CURL_GLOBAL_ALL);
    if (ctl_kauth_load(&ctrl.auth, ctrl.cfg.kubeconfig, err, sizeof err) < 0) {
        ctl_error("Kubernetes credentials: %s", err);
        return 1;
    }
    if (!ctrl.cfg.lease_namespace)
        ctrl.cfg.lease_namespace = ctrl.cfg.namespace && *ctrl.cfg.namespace ? ctrl.cfg.namespace
                                   : ctrl.auth.namespace                     ? ctrl.auth.namespace
                                                                             : "default";
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0 || ctrl_init(&ctrl) < 0) {
        ctl_error("cannot initialise: %s", strerror(errno));
        return 1;
    }
    sig_ctrl = &ctrl;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    hd.ready = ready_cb;
    hd.arg = &ctrl;
    if (ctrl.cfg.metrics_listen && *ctrl.cfg.metrics_listen && strcmp(ctrl.cfg.metrics_listen, "off") &&
        ctl_httpd_open(&hd, ctrl.cfg.metrics_listen) < 0)
        return 1;
    ctl_info("starting: api %s, namespace %s, broker %s, metrics %s port %d, leader election %s "
             "(lease %s/%s as %s), %d workers",
             ctrl.auth.server, ctrl.cfg.namespace && *ctrl.cfg.namespace ? ctrl.cfg.namespace : "(all)",
             ctrl.cfg.broker_admin, ctrl.cfg.metrics_listen, ctl_httpd_port(&hd),
             ctrl.cfg.leader_election ? "on" : "off", ctrl.cfg.lease_namespace,
             ctrl.cfg.lease_name, ctrl.cfg.pod_name, ctrl.cfg.workers);
    for (int k = 0; k < CTL_NKINDS; k++)
        ctl_informer_init(&infs[k], &ctrl, (enum ctl_kind)k);
    if (ctrl.cfg.leader_election) {
        if (ctl_leader_start(&ctrl, &leader_thread) < 0) {
            ctl_error("cannot start the leader elector");
            return 1;
        }
    } else {
        ctrl.leader = 1;
        ctl_metric_set(&ctl_metrics.leader, 1);
    }
    if (ctl_workers_start(&ctrl, &workers, ctrl.cfg.workers) < 0)
        return 1;
    run_loop(&ctrl, infs, &hd);
    pthread_mutex_lock(&ctrl.mu);
    pthread_cond_broadcast(&ctrl.cv);
    pthread_mutex_unlock(&ctrl.mu);
    ctl_workers_join(workers, ctrl.cfg.workers);
    if (ctrl.cfg.leader_election)
        ctl_leader_join(leader_thread);
    ctl_httpd_close(&hd);
    ctrl_free(&ctrl);
    curl_global_cleanup();
    ctl_info("stopped");
    return 0;
}
