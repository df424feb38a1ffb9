/* ctl_rec.h: what one reconcile works with: the worker's clients, the object being
 * reconciled, and helpers for the parts every kind shares (finalizer, status with
 * conditions, Events, requeue decisions). */
#ifndef CTL_REC_H
#define CTL_REC_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "ctl_broker.h"
#include "ctl_ctrl.h"
#include "ctl_kube.h"

struct ctl_worker {
    struct ctl_ctrl *ctrl;
    struct ctl_kclient kc;
    struct ctl_bclient bc;
    int id;
    pthread_t thread;
};

struct ctl_rec {
    struct ctl_worker *w;
    enum ctl_kind kind;
    const char *kind_name; /* "Topic" */
    cJSON *obj;            /* the object as last read (owned) */
    const char *ns, *name; /* borrowed from obj */
    int64_t generation;
    cJSON *status;  /* the status being built (owned); conditions are added by set_ready */
    bool ready;
    char reason[64];
    char message[512];
    bool retry;          /* a transient failure: requeue with per-key backoff */
    int64_t requeue_ms;  /* > 0: check again after this long even on success */
};

/* Reads obj's metadata into r (ns, name, generation) and starts an empty status. */
int ctl_rec_init(struct ctl_rec *r, struct ctl_worker *w, enum ctl_kind kind, cJSON *obj);
void ctl_rec_free(struct ctl_rec *r);

const char *ctl_jstr(const cJSON *o, const char *k);
/* Reads an integral number member; returns def when absent, -1 (and *ok=false) when it is
 * not an integer. */
int64_t ctl_jint(const cJSON *o, const char *k, int64_t def, bool *ok);
bool ctl_rec_deleting(const struct ctl_rec *r);
bool ctl_rec_has_finalizer(const struct ctl_rec *r);
/* Adds or removes the finalizer with a PUT of the object, re-reading it after a 409.
 * Returns 0, 1 when the object is gone, or -1 (r->message says why, r->retry set). */
int ctl_rec_finalizer(struct ctl_rec *r, bool add);
/* Sets the outcome: the Ready condition's status, reason and message. */
void ctl_rec_outcome(struct ctl_rec *r, bool ready, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds (or replaces) condition type in conds, keeping lastTransitionTime when the status
 * is unchanged from old_conds. */
int ctl_set_condition(cJSON *conds, const cJSON *old_conds, const char *type, bool status,
                      const char *reason, const char *message, int64_t generation);
/* Writes r->status plus the Ready condition through /status when it differs from the
 * object's status, re-reading after a 409. Posts an Event when Ready's reason changed.
 * Returns 0 or -1. */
int ctl_rec_write_status(struct ctl_rec *r);
/* Posts a core/v1 Event about the object (best effort). */
void ctl_rec_event(struct ctl_rec *r, bool warning, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a failed broker call onto the outcome: unreachable/5xx -> BrokerUnavailable
 * (retry), others -> reason with the broker's message. */
void ctl_rec_broker_error(struct ctl_rec *r, const char *what, const struct ctl_bresp *b);
/* Starts r->status from the object's status (less observedGeneration and conditions),
 * so that what a failed reconcile did not get to recompute keeps its last value. */
void ctl_rec_carry_status(struct ctl_rec *r);
/* Sets member k of status object st to v (taken over), replacing an old one. */
void ctl_status_put(cJSON *st, const char *k, cJSON *v);
/* GETs the object afresh into r->obj. Returns 0, 1 when it is gone, -1 on error. */
int ctl_rec_reread(struct ctl_rec *r);

struct ctl_topic_want;
/* Creates broker topic w or brings it in step. Returns 0 with *topic_json the broker's
 * view (the caller frees it), or -1 with r's outcome set. */
int ctl_topic_ensure(struct ctl_rec *r, const struct ctl_topic_want *w, cJSON **topic_json,
                     bool *created);

/* The reconcilers. Each fills r's outcome; status writing and requeueing are done by the
 * caller. */
void ctl_topic_reconcile(struct ctl_rec *r);
void ctl_agent_reconcile(struct ctl_rec *r);
void ctl_dataset_reconcile(struct ctl_rec *r);

#endif
