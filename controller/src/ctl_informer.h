/* ctl_informer.h: list-then-watch of one kind on the event loop's curl multi handle.
 * It pages through the list (limit=500), watches from the list's resourceVersion with
 * bookmarks and a server timeout, reconnects when the watch ends, relists on 410 Gone
 * (HTTP status or ERROR event), and backs off with jitter on errors. Every change goes
 * into the kind's cache and queues the keys that need a reconcile. A training-job kind
 * is optional: when the cluster does not serve it (404, no such CRD) or RBAC does not
 * allow it (403), its cache is empty and synced, and the list is tried again each
 * minute; a kind not configured (SLUICE_JOB_KINDS) is never requested. */
#ifndef CTL_INFORMER_H
#define CTL_INFORMER_H

#include <stdbool.h>
#include <stdint.h>
#include <curl/curl.h>

#include "ctl_backoff.h"
#include "ctl_ctrl.h"
#include "ctl_http.h"
#include "ctl_lines.h"

#define CTL_WATCH_MAX_LINE (16u << 20) /* one watch event; larger ones are skipped */
#define CTL_LIST_PAGE 500

enum ctl_inf_state { CTL_INF_WAITING, CTL_INF_LISTING, CTL_INF_WATCHING, CTL_INF_OFF };

struct ctl_informer {
    struct ctl_ctrl *ctrl;
    enum ctl_kind kind;
    char path[512]; /* the collection */
    enum ctl_inf_state state;
    bool relist;    /* when WAITING: list next rather than watch */
    CURL *h;
    struct curl_slist *hdrs;
    struct ctl_http_resp body; /* a list page, or a failed watch's answer */
    struct ctl_linebuf lb;
    char rv[64];
    char *cont; /* list continue token */
    bool gone;  /* the watch sent ERROR 410 */
    bool absent; /* a job kind the cluster does not serve (404) or lets us read (403) */
    bool watch_error;
    unsigned long events; /* in the current watch */
    int64_t started_ms, due_ms;
    struct ctl_backoff bo;
};

int ctl_informer_init(struct ctl_informer *inf, struct ctl_ctrl *c, enum ctl_kind kind);
void ctl_informer_free(struct ctl_informer *inf, CURLM *m);
/* Starts the next request when one is due. */
void ctl_informer_tick(struct ctl_informer *inf, CURLM *m, int64_t now);
/* Milliseconds until tick has something to do; -1 while a request runs. */
int64_t ctl_informer_wait(const struct ctl_informer *inf, int64_t now);
/* Handles the end of inf's transfer. */
void ctl_informer_done(struct ctl_informer *inf, CURLM *m, CURLcode rc);

/* Applies one watch event line (exposed for tests). Returns 0, 1 for a 410 ERROR event,
 * -1 for another ERROR event or an unreadable line. Caller holds the ctrl lock. */
int ctl_informer_event(struct ctl_informer *inf, const char *line, size_t len);

/* Reduces a Pod to what the controller needs: name, namespace, labels, deletion,
 * phase and its nvidia.com/gpu requests. Returns a new object or NULL. */
cJSON *ctl_pod_compact(const cJSON *pod);

#endif
