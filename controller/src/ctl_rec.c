/* ctl_rec.c: finalizer, status, conditions and Events shared by the reconcilers. */
#include "ctl_rec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"

#define MAX_CONFLICT_RETRIES 4

const char *ctl_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t ctl_jint(const cJSON *o, const char *k, int64_t def, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble > 9007199254740992.0 || v->valuedouble < -9007199254740992.0) {
        if (ok)
            *ok = false;
        return -1;
    }
    return (int64_t)v->valuedouble;
}

static void rec_bind(struct ctl_rec *r)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r->obj, "metadata");
    r->ns = ctl_jstr(md, "namespace");
    r->name = ctl_jstr(md, "name");
    if (!r->ns)
        r->ns = "default";
    r->generation = ctl_jint(md, "generation", 0, NULL);
}

int ctl_rec_init(struct ctl_rec *r, struct ctl_worker *w, enum ctl_kind kind, cJSON *obj)
{
    memset(r, 0, sizeof *r);
    r->w = w;
    r->kind = kind;
    r->kind_name = ctl_kind_name(kind);
    r->obj = obj;
    rec_bind(r);
    r->status = cJSON_CreateObject();
    return r->name && r->status ? 0 : -1;
}

void ctl_rec_free(struct ctl_rec *r)
{
    cJSON_Delete(r->obj);
    cJSON_Delete(r->status);
    r->obj = r->status = NULL;
}

void ctl_rec_carry_status(struct ctl_rec *r)
{
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(r->obj, "status");
    cJSON *st = cJSON_IsObject(old) ? cJSON_Duplicate(old, 1) : NULL;
    if (!st)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(st, "observedGeneration");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "conditions");
    cJSON_Delete(r->status);
    r->status = st;
}

void ctl_status_put(cJSON *st, const char *k, cJSON *v)
{
    if (!v)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(st, k);
    if (!cJSON_AddItemToObject(st, k, v))
        cJSON_Delete(v);
}

bool ctl_rec_deleting(const struct ctl_rec *r)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r->obj, "metadata");
    return ctl_jstr(md, "deletionTimestamp") != NULL;
}

bool ctl_rec_has_finalizer(const struct ctl_rec *r)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r->obj, "metadata"), *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(md, "finalizers"))
    {
        if (cJSON_IsString(f) && !strcmp(f->valuestring, CTL_FINALIZER))
            return true;
    }
    return false;
}

int ctl_rec_reread(struct ctl_rec *r)
{
    char path[1024];
    cJSON *fresh = NULL;
    if (ctl_object_path(r->kind, r->ns, r->name, NULL, path, sizeof path) < 0)
        return -1;
    long st = ctl_kube_json(&r->w->kc, "GET", path, NULL, NULL, &fresh);
    if (st == 404) {
        cJSON_Delete(fresh);
        return 1;
    }
    if (st != 200 || !fresh) {
        snprintf(r->message, sizeof r->message, "reading %s %s/%s: HTTP %ld", r->kind_name, r->ns,
                 r->name, st);
        cJSON_Delete(fresh);
        r->retry = true;
        return -1;
    }
    /* keep ns/name valid: they point into the old object until rebound */
    cJSON *old = r->obj;
    r->obj = fresh;
    rec_bind(r);
    cJSON_Delete(old);
    return 0;
}

/* Sets or clears our finalizer in r->obj's metadata. */
static void fin_edit(cJSON *obj, bool add)
{
    cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(md, "finalizers");
    if (!arr) {
        arr = cJSON_AddArrayToObject(md, "finalizers");
        if (!arr)
            return;
    }
    for (int i = cJSON_GetArraySize(arr) - 1; i >= 0; i--) {
        cJSON *f = cJSON_GetArrayItem(arr, i);
        if (cJSON_IsString(f) && !strcmp(f->valuestring, CTL_FINALIZER))
            cJSON_DeleteItemFromArray(arr, i);
    }
    if (add)
        cJSON_AddItemToArray(arr, cJSON_CreateString(CTL_FINALIZER));
}

int ctl_rec_finalizer(struct ctl_rec *r, bool add)
{
    char path[1024];
    if (ctl_object_path(r->kind, r->ns, r->name, NULL, path, sizeof path) < 0)
        return -1;
    for (int attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
        if (ctl_rec_has_finalizer(r) == add)
            return 0;
        fin_edit(r->obj, add);
        cJSON *out = NULL;
        long st = ctl_kube_json(&r->w->kc, "PUT", path, r->obj, NULL, &out);
        if (st == 200 && out) {
            cJSON_Delete(r->obj);
            r->obj = out;
            rec_bind(r);
            return 0;
        }
        cJSON_Delete(out);
        if (st == 404)
            return 1;
        if (st != 409) {
            snprintf(r->message, sizeof r->message, "%s the finalizer: HTTP %ld",
                     add ? "adding" : "removing", st);
            r->retry = true;
            return -1;
        }
        ctl_debug("%s %s/%s: conflict on the finalizer; re-reading", r->kind_name, r->ns, r->name);
        int rr = ctl_rec_reread(r);
        if (rr != 0)
            return rr;
    }
    snprintf(r->message, sizeof r->message, "the finalizer update kept conflicting");
    r->retry = true;
    return -1;
}

void ctl_rec_outcome(struct ctl_rec *r, bool ready, const char *reason, const char *fmt, ...)
{
    va_list ap;
    r->ready = ready;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

static const cJSON *cond_find(const cJSON *conds, const char *type)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, conds)
    {
        const char *t = ctl_jstr(c, "type");
        if (t && !strcmp(t, type))
            return c;
    }
    return NULL;
}

int ctl_set_condition(cJSON *conds, const cJSON *old_conds, const char *type, bool status,
                      const char *reason, const char *message, int64_t generation)
{
    const char *sv = status ? "True" : "False";
    const cJSON *old = cond_find(old_conds, type);
    const char *ots = ctl_jstr(old, "status"), *olt = ctl_jstr(old, "lastTransitionTime");
    char now[40];
    ctl_rfc3339(now, sizeof now);
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "type", type) ||
        !cJSON_AddStringToObject(c, "status", sv) || !cJSON_AddStringToObject(c, "reason", reason) ||
        !cJSON_AddStringToObject(c, "message", message) ||
        !cJSON_AddStringToObject(c, "lastTransitionTime", ots && olt && !strcmp(ots, sv) ? olt : now) ||
        !cJSON_AddNumberToObject(c, "observedGeneration", (double)generation)) {
        cJSON_Delete(c);
        return -1;
    }
    for (int i = cJSON_GetArraySize(conds) - 1; i >= 0; i--) {
        const char *t = ctl_jstr(cJSON_GetArrayItem(conds, i), "type");
        if (t && !strcmp(t, type))
            cJSON_DeleteItemFromArray(conds, i);
    }
    cJSON_AddItemToArray(conds, c);
    return 0;
}

/* Builds the full new status: r->status, observedGeneration and conditions (extra
 * conditions the reconciler put in r->status.conditions are kept). */
static cJSON *rec_new_status(struct ctl_rec *r, const cJSON *old)
{
    cJSON *st = cJSON_Duplicate(r->status, 1);
    if (!st)
        return NULL;
    const cJSON *oldc = cJSON_GetObjectItemCaseSensitive(old, "conditions");
    cJSON *conds = cJSON_GetObjectItemCaseSensitive(st, "conditions");
    if (!conds)
        conds = cJSON_AddArrayToObject(st, "conditions");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "observedGeneration");
    cJSON_AddNumberToObject(st, "observedGeneration", (double)r->generation);
    /* re-stamp extra conditions against the old ones so their times stay put */
    cJSON *fixed = cJSON_CreateArray(), *c;
    cJSON_ArrayForEach(c, conds)
    {
        ctl_set_condition(fixed, oldc, ctl_jstr(c, "type"),
                          !strcmp(ctl_jstr(c, "status") ? ctl_jstr(c, "status") : "", "True"),
                          ctl_jstr(c, "reason") ? ctl_jstr(c, "reason") : "Unknown",
                          ctl_jstr(c, "message") ? ctl_jstr(c, "message") : "", r->generation);
    }
    ctl_set_condition(fixed, oldc, "Ready", r->ready, r->reason[0] ? r->reason : "Unknown",
                      r->message, r->generation);
    cJSON_ReplaceItemInObjectCaseSensitive(st, "conditions", fixed);
    return st;
}

/* Compares statuses ignoring member order of conditions (we always write Ready last). */
static bool status_equal(const cJSON *a, const cJSON *b)
{
    return a && b && cJSON_Compare(a, b, true);
}

int ctl_rec_write_status(struct ctl_rec *r)
{
    char path[1024];
    if (ctl_object_path(r->kind, r->ns, r->name, "/status", path, sizeof path) < 0)
        return -1;
    const cJSON *old0 = cJSON_GetObjectItemCaseSensitive(r->obj, "status");
    const cJSON *oldready = cond_find(cJSON_GetObjectItemCaseSensitive(old0, "conditions"), "Ready");
    char old_reason[64];
    snprintf(old_reason, sizeof old_reason, "%s", ctl_jstr(oldready, "reason") ? ctl_jstr(oldready, "reason") : "");
    for (int attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(r->obj, "status");
        cJSON *st = rec_new_status(r, old);
        if (!st)
            return -1;
        if (status_equal(st, old)) {
            cJSON_Delete(st);
            return 0;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(r->obj, "status");
        cJSON_AddItemToObject(r->obj, "status", st);
        cJSON *out = NULL;
        long code = ctl_kube_json(&r->w->kc, "PUT", path, r->obj, NULL, &out);
        if (code == 200 && out) {
            cJSON_Delete(r->obj);
            r->obj = out;
            rec_bind(r);
            if (strcmp(old_reason, r->reason))
                ctl_rec_event(r, !r->ready, r->reason, "%s", r->message);
            return 0;
        }
        cJSON_Delete(out);
        if (code == 404)
            return 0; /* gone meanwhile */
        if (code != 409) {
            ctl_warn("%s %s/%s: writing status: HTTP %ld", r->kind_name, r->ns, r->name, code);
            r->retry = true;
            return -1;
        }
        ctl_debug("%s %s/%s: conflict writing status; re-reading", r->kind_name, r->ns, r->name);
        if (ctl_rec_reread(r) != 0)
            return -1;
    }
    r->retry = true;
    return -1;
}

void ctl_rec_event(struct ctl_rec *r, bool warning, const char *reason, const char *fmt, ...)
{
    char msg[1024], now[40], micro[40], path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctl_rfc3339(now, sizeof now);
    ctl_rfc3339_micro(micro, sizeof micro);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r->obj, "metadata");
    cJSON *ev = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(ev, "metadata");
    cJSON *io = cJSON_AddObjectToObject(ev, "involvedObject");
    cJSON *src = cJSON_AddObjectToObject(ev, "source");
    char gen[300];
    snprintf(gen, sizeof gen, "%.250s.", r->name);
    bool ok = m && io && src && cJSON_AddStringToObject(ev, "apiVersion", "v1") &&
              cJSON_AddStringToObject(ev, "kind", "Event") &&
              cJSON_AddStringToObject(m, "generateName", gen) &&
              cJSON_AddStringToObject(m, "namespace", r->ns) &&
              cJSON_AddStringToObject(io, "apiVersion", CTL_GROUP_VERSION) &&
              cJSON_AddStringToObject(io, "kind", r->kind_name) &&
              cJSON_AddStringToObject(io, "name", r->name) &&
              cJSON_AddStringToObject(io, "namespace", r->ns) &&
              cJSON_AddStringToObject(io, "uid", ctl_jstr(md, "uid") ? ctl_jstr(md, "uid") : "") &&
              cJSON_AddStringToObject(ev, "reason", reason) &&
              cJSON_AddStringToObject(ev, "message", msg) &&
              cJSON_AddStringToObject(ev, "type", warning ? "Warning" : "Normal") &&
              cJSON_AddStringToObject(src, "component", "sluice-controller") &&
              cJSON_AddStringToObject(ev, "reportingComponent", "sluice.dev/controller") &&
              cJSON_AddStringToObject(ev, "reportingInstance",
                                      r->w->ctrl->cfg.pod_name ? r->w->ctrl->cfg.pod_name : "") &&
              cJSON_AddStringToObject(ev, "firstTimestamp", now) &&
              cJSON_AddStringToObject(ev, "lastTimestamp", now) &&
              cJSON_AddStringToObject(ev, "eventTime", micro) &&
              cJSON_AddStringToObject(ev, "action", reason) &&
              cJSON_AddNumberToObject(ev, "count", 1);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/events", r->ns);
    if (ok) {
        cJSON *out = NULL;
        long st = ctl_kube_json(&r->w->kc, "POST", path, ev, NULL, &out);
        cJSON_Delete(out);
        if (st == 201 || st == 200)
            ctl_metric_inc(&ctl_metrics.events_posted);
        else
            ctl_debug("posting an Event: HTTP %ld", st);
    }
    cJSON_Delete(ev);
}

void ctl_rec_broker_error(struct ctl_rec *r, const char *what, const struct ctl_bresp *b)
{
    if (b->status < 0 || b->status >= 500 || b->status == 401 || b->status == 403) {
        ctl_rec_outcome(r, false, "BrokerUnavailable", "%s: %s", what,
                        b->message[0] ? b->message : "no answer");
        r->retry = true;
        return;
    }
    if (b->status == 400 && !strcmp(b->code, "unsupported")) {
        ctl_rec_outcome(r, false, "BrokerUnsupported", "%s: %s", what, b->message);
        r->retry = true;
        return;
    }
    ctl_rec_outcome(r, false, b->status == 400 ? "InvalidSpec" : "BrokerError", "%s: %s (%s)",
                    what, b->message, b->code[0] ? b->code : "error");
    r->retry = b->status != 400; /* a rejected spec waits for a spec change */
}
