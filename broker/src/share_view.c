/* share_view.c: shared views for classic consumers (see share_view.h). View state is
 * memory only: per virtual partition the next offset, the current owner and the mapping
 * from v-offsets to the real batches handed out. What must survive a restart is in the
 * share engine (acknowledged records) and the group coordinator (v's committed offset);
 * after a restart a fetch at the committed offset simply continues v's numbering there. */
#include "share_view.h"

#include "batch.h"
#include "broker.h"
#include "conn.h"
#include "group.h"
#include "log.h"
#include "share.h"
#include "store.h"
#include "topic.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_MAX_PARTITIONS 65536
#define CLIENT_ID_MAX 255

/* One batch handed out on v: real partition part, offsets [rbase, rlast], whose record r
 * has v-offset vbase + (r - rbase). Only records from afirst on were acquired with it
 * (the ones before lie below the fetch offset); only those are ever settled through it. */
struct vmap {
    int32_t part;
    int64_t vbase, rbase, rlast, afirst;
};

struct vpart {
    int64_t next;     /* next v-offset to hand out */
    uint64_t conn_id; /* the connection that fetches v; 0: none yet */
    char client[CLIENT_ID_MAX + 1];
    struct vmap *map; /* in hand-out order */
    int nmap, capmap;
};

struct sview {
    struct sview *next;
    char name[TOPIC_NAME_MAX + 1];
    char group[TOPIC_NAME_MAX + 1];    /* share group id */
    char last_group[GROUP_ID_MAX + 1]; /* classic group that last committed */
    uint8_t id[16], real_id[16];
    int32_t nparts;     /* V */
    int32_t real_parts; /* partitions of the real topic */
    int32_t max_unacked;
    int32_t rr; /* real partition to start from on the next fetch */
    struct vpart *vp;
};

struct sviews {
    struct broker *b;
    struct sview *list;
};

struct sviews *sviews_new(struct broker *b)
{
    struct sviews *vs = calloc(1, sizeof *vs);
    if (vs)
        vs->b = b;
    return vs;
}

static void view_free(struct sview *v)
{
    for (int32_t i = 0; i < v->nparts; i++)
        free(v->vp[i].map);
    free(v->vp);
    free(v);
}

void sviews_free(struct sviews *vs)
{
    if (!vs)
        return;
    for (struct sview *v = vs->list, *n; v; v = n) {
        n = v->next;
        view_free(v);
    }
    free(vs);
}

/* ---- settings ---- */

static int64_t cfg_num(const struct topic *t, const char *key, int64_t dflt)
{
    const char *s = topic_config_get(t, key);
    char *end;
    long long x = s ? strtoll(s, &end, 10) : 0;
    return s && *s && !*end ? x : dflt;
}

void share_view_name_of(const struct topic *t, char *out, size_t cap)
{
    const char *n = topic_config_get(t, "shared.name");
    if (n)
        snprintf(out, cap, "%s", n);
    else
        snprintf(out, cap, "%.*s%s", (int)(TOPIC_NAME_MAX - (sizeof SVIEW_SUFFIX - 1)), t->name,
                 SVIEW_SUFFIX);
}

static bool has_view(const struct topic *t)
{
    return cfg_num(t, "shared.virtual.partitions", 0) > 0;
}

/* The share group of the view of t, created and configured from t's settings. */
static struct share_group *view_group(struct broker *b, const struct topic *t, const char *name,
                                      int32_t nparts, int32_t max_unacked)
{
    const char *gid = topic_config_get(t, "shared.group");
    if (!gid)
        gid = name;
    struct share_group *g = share_group_get(b->shares, gid, strlen(gid), true);
    if (!g)
        return NULL;
    struct share_config c = *share_group_config(g);
    int64_t inflight = (int64_t)nparts * max_unacked * 2;
    c.lock_ms = (int32_t)cfg_num(t, "shared.lock.ms", c.lock_ms);
    c.max_deliveries = (int32_t)cfg_num(t, "shared.max.deliveries", c.max_deliveries);
    c.max_inflight = inflight < SHARE_DEFAULT_MAX_INFLIGHT ? SHARE_DEFAULT_MAX_INFLIGHT
                     : inflight > SHARE_MAX_INFLIGHT_MAX   ? SHARE_MAX_INFLIGHT_MAX
                                                           : (int32_t)inflight;
    c.auto_reset = SHARE_RESET_EARLIEST;
    const struct share_config *cur = share_group_config(g);
    if (memcmp(&c, cur, sizeof c) != 0) {
        char msg[128];
        if (share_group_configure(g, &c, msg, sizeof msg) < 0)
            log_warn("view %s: share group %s: %s", name, gid, msg);
    }
    return g;
}

/* ---- the registry ---- */

static void vpart_release_from(struct broker *b, struct sview *v, int32_t i, int64_t from,
                               int64_t count_at);

/* Changes the number of virtual partitions; the ones that go release their records. */
static int view_resize(struct broker *b, struct sview *v, int32_t n)
{
    if (n == v->nparts)
        return 0;
    for (int32_t i = n; i < v->nparts; i++) {
        vpart_release_from(b, v, i, INT64_MIN, INT64_MIN);
        free(v->vp[i].map);
    }
    struct vpart *np = realloc(v->vp, (size_t)n * sizeof *np);
    if (!np && n > 0)
        return -1;
    for (int32_t i = v->nparts; i < n; i++)
        np[i] = (struct vpart){0};
    v->vp = np;
    v->nparts = n;
    return 0;
}

/* Brings v in line with its real topic t; returns false when t no longer has this view. */
static bool view_refresh(struct broker *b, struct sview *v, struct topic *t)
{
    char name[TOPIC_NAME_MAX + 1];
    if (!t || !has_view(t))
        return false;
    share_view_name_of(t, name, sizeof name);
    if (strcmp(name, v->name) != 0)
        return false;
    int64_t n = cfg_num(t, "shared.virtual.partitions", 0);
    v->max_unacked = (int32_t)cfg_num(t, "shared.max.unacked", SVIEW_DEFAULT_MAX_UNACKED);
    v->real_parts = t->partitions;
    const char *gid = topic_config_get(t, "shared.group");
    snprintf(v->group, sizeof v->group, "%s", gid ? gid : v->name);
    if (n > VIEW_MAX_PARTITIONS)
        n = VIEW_MAX_PARTITIONS;
    if (view_resize(b, v, (int32_t)n) < 0)
        return false;
    return view_group(b, t, v->name, v->nparts, v->max_unacked) != NULL;
}

static void view_unlink(struct sviews *vs, struct sview *v)
{
    struct sview **pp = &vs->list;
    while (*pp != v)
        pp = &(*pp)->next;
    *pp = v->next;
    for (int32_t i = 0; i < v->nparts; i++)
        vpart_release_from(vs->b, v, i, INT64_MIN, INT64_MIN);
    view_free(v);
}

/* Validates a resident view; frees it and returns NULL when it is gone. */
static struct sview *view_check(struct broker *b, struct sview *v)
{
    if (view_refresh(b, v, topic_find_id(b->topics, v->real_id)))
        return v;
    view_unlink(b->views, v);
    return NULL;
}

static struct sview *view_new(struct broker *b, struct topic *t, const char *name)
{
    struct sview *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    snprintf(v->name, sizeof v->name, "%s", name);
    memcpy(v->real_id, t->id, 16);
    memcpy(v->id, t->id, 16);
    v->id[0] ^= 0x80;
    if (!view_refresh(b, v, t)) {
        view_free(v);
        return NULL;
    }
    v->next = b->views->list;
    b->views->list = v;
    return v;
}

struct sview *share_view_of(struct broker *b, struct topic *t)
{
    char name[TOPIC_NAME_MAX + 1];
    if (!b->views || !has_view(t))
        return NULL;
    share_view_name_of(t, name, sizeof name);
    for (struct sview *v = b->views->list; v; v = v->next)
        if (!memcmp(v->real_id, t->id, 16))
            return view_check(b, v);
    return view_new(b, t, name);
}

/* The index of custom view names: 'V' | view name -> real topic name (STORE_CF_SHARE). */
static struct topic *index_lookup(struct broker *b, const char *name, size_t len)
{
    uint8_t k[1 + TOPIC_NAME_MAX];
    size_t vl;
    int err;
    if (len > TOPIC_NAME_MAX)
        return NULL;
    k[0] = 'V';
    memcpy(k + 1, name, len);
    char *real = store_get(b->store, STORE_CF_SHARE, k, 1 + len, &vl, &err);
    struct topic *t = real ? topic_find(b->topics, real, vl) : NULL;
    free(real);
    return t;
}

struct sview *share_view_find(struct broker *b, const char *name, size_t len)
{
    if (!b->views || len == 0 || len > TOPIC_NAME_MAX)
        return NULL;
    for (struct sview *v = b->views->list; v; v = v->next)
        if (strlen(v->name) == len && !memcmp(v->name, name, len))
            return view_check(b, v);
    size_t sl = sizeof SVIEW_SUFFIX - 1;
    struct topic *t = NULL;
    if (len > sl && !memcmp(name + len - sl, SVIEW_SUFFIX, sl))
        t = topic_find(b->topics, name, len - sl);
    if (!t || !has_view(t))
        t = index_lookup(b, name, len);
    if (!t || !has_view(t))
        return NULL;
    char want[TOPIC_NAME_MAX + 1];
    share_view_name_of(t, want, sizeof want);
    if (strlen(want) != len || memcmp(want, name, len))
        return NULL;
    struct sview *v = share_view_of(b, t);
    return v && !strcmp(v->name, want) ? v : NULL;
}

struct sview *share_view_find_id(struct broker *b, const uint8_t id[16])
{
    uint8_t real[16];
    if (!b->views)
        return NULL;
    memcpy(real, id, 16);
    real[0] ^= 0x80;
    struct topic *t = topic_find_id(b->topics, real);
    return t ? share_view_of(b, t) : NULL;
}

const char *share_view_name(const struct sview *v)
{
    return v->name;
}
const uint8_t *share_view_id(const struct sview *v)
{
    return v->id;
}
int32_t share_view_partitions(const struct sview *v)
{
    return v->nparts;
}

static struct share_group *vgroup(struct broker *b, const struct sview *v)
{
    return share_group_get(b->shares, v->group, strlen(v->group), true);
}

struct share_group *share_view_group(struct broker *b, const struct sview *v)
{
    return vgroup(b, v);
}

static struct share_member *vmember(struct share_group *g, int32_t i)
{
    char id[16];
    int n = snprintf(id, sizeof id, "v%d", i);
    return g ? share_member_get(g, id, (size_t)n, true) : NULL;
}

int share_view_setup(struct broker *b, struct topic *t, char *msg, size_t msglen)
{
    char name[TOPIC_NAME_MAX + 1];
    if (!has_view(t))
        return 0;
    share_view_name_of(t, name, sizeof name);
    if (topic_find(b->topics, name, strlen(name))) {
        snprintf(msg, msglen, "view name %s is taken by a topic", name);
        return -1;
    }
    if (topic_config_get(t, "shared.name")) {
        uint8_t k[1 + TOPIC_NAME_MAX];
        k[0] = 'V';
        memcpy(k + 1, name, strlen(name));
        if (store_put(b->store, STORE_CF_SHARE, k, 1 + strlen(name), t->name, strlen(t->name)) <
            0) {
            snprintf(msg, msglen, "store write failed");
            return -1;
        }
    }
    if (!share_view_of(b, t)) {
        snprintf(msg, msglen, "cannot set up the view %s", name);
        return -1;
    }
    return 0;
}

/* ---- mapping ---- */

static struct share_part *real_part(struct broker *b, struct sview *v, int32_t part)
{
    struct share_group *g = vgroup(b, v);
    return g ? share_part_get(g, v->real_id, part) : NULL;
}

/* Settles what v's member holds of one mapped batch, for v-offsets in [vlo, vhi). type -1
 * gives records back uncounted (share_return), except the one at v-offset count_at, the one
 * its consumer was most likely working on, which counts toward the delivery limit. */
static void map_settle(struct broker *b, struct sview *v, struct share_member *m,
                       const struct vmap *e, int64_t vlo, int64_t vhi, int type, int64_t count_at)
{
    int64_t vlast = e->vbase + (e->rlast - e->rbase);
    int64_t lo = vlo > e->vbase ? vlo : e->vbase, hi = vhi - 1 < vlast ? vhi - 1 : vlast;
    if (lo > hi)
        return;
    struct share_part *sp = real_part(b, v, e->part);
    if (!sp)
        return;
    int64_t rlo = e->rbase + (lo - e->vbase), rhi = e->rbase + (hi - e->vbase);
    if (rlo < e->afirst)
        rlo = e->afirst;
    if (rlo > rhi)
        return;
    if (type != -1) {
        share_settle(sp, m, rlo, rhi, type);
        return;
    }
    if (count_at >= lo && count_at <= hi && e->rbase + (count_at - e->vbase) >= rlo) {
        int64_t rc = e->rbase + (count_at - e->vbase);
        share_settle(sp, m, rc, rc, SHARE_ACK_RELEASE);
    }
    share_return(sp, m, rlo, rhi);
}

/* Releases what vp i holds from v-offset `from` on and forgets those mappings. The record
 * at count_at (where its new owner starts: the committed offset) counts as a delivery; the
 * rest were only prefetched. */
static void vpart_release_from(struct broker *b, struct sview *v, int32_t i, int64_t from,
                               int64_t count_at)
{
    struct vpart *p = &v->vp[i];
    struct share_member *m = vmember(vgroup(b, v), i);
    if (!m)
        return;
    int keep = 0;
    for (int k = 0; k < p->nmap; k++) {
        struct vmap *e = &p->map[k];
        map_settle(b, v, m, e, from, INT64_MAX, -1, count_at);
        if (e->vbase >= from)
            continue;
        if (e->vbase + (e->rlast - e->rbase) >= from) /* keep only the part below from */
            e->rlast = e->rbase + (from - 1 - e->vbase);
        p->map[keep++] = *e;
    }
    p->nmap = keep;
}

static int map_add(struct vpart *p, int32_t part, int64_t vbase, int64_t rbase, int64_t rlast,
                   int64_t afirst)
{
    if (p->nmap == p->capmap) {
        int cap = p->capmap ? p->capmap * 2 : 16;
        struct vmap *n = realloc(p->map, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        p->map = n;
        p->capmap = cap;
    }
    p->map[p->nmap++] = (struct vmap){part, vbase, rbase, rlast, afirst};
    return 0;
}

/* Drops mappings whose records m no longer holds (acknowledged elsewhere or expired), so
 * a consumer that never commits cannot grow the map without bound. */
static void map_prune(struct broker *b, struct sview *v, struct vpart *p, struct share_member *m)
{
    int keep = 0;
    for (int k = 0; k < p->nmap; k++) {
        struct vmap *e = &p->map[k];
        struct share_part *sp = real_part(b, v, e->part);
        int n = 0;
        bool held = false;
        struct share_range *r = sp ? share_part_held(sp, m, &n) : NULL;
        for (int j = 0; j < n && !held; j++)
            held = r[j].last >= e->rbase && r[j].first <= e->rlast;
        free(r);
        if (held)
            p->map[keep++] = *e;
    }
    p->nmap = keep;
}

/* ---- fetch ---- */

/* Takes note of who fetches vp at offset: another connection, or an offset below what vp
 * handed out, gives vp's unacknowledged records from there back to the pool. */
static void vpart_owner(struct broker *b, struct sview *v, int32_t i, struct conn *c,
                        kc_str client_id, int64_t offset)
{
    struct vpart *p = &v->vp[i];
    uint64_t cid = c ? c->id : 0;
    if (p->conn_id != cid) {
        /* the record the new owner starts at counts as a delivery only when the old owner's
         * connection is gone (a crash, maybe on that record); a move between live consumers
         * (a rebalance) or a seek back hands everything back uncounted */
        bool gone = !server_conn_alive(b->server, p->conn_id);
        if (p->conn_id)
            vpart_release_from(b, v, i, INT64_MIN, gone ? offset : INT64_MIN);
        p->conn_id = cid;
        p->next = offset;
    } else if (offset < p->next) {
        vpart_release_from(b, v, i, offset, INT64_MIN);
        p->next = offset;
    } else if (offset > p->next) {
        p->next = offset;
    }
    if (client_id.len >= 0) {
        size_t n = (size_t)client_id.len < CLIENT_ID_MAX ? (size_t)client_id.len : CLIENT_ID_MAX;
        memcpy(p->client, client_id.p, n);
        p->client[n] = 0;
    }
}

/* Rewrites the batches acquired from one real partition into vp's offsets. */
static void place_batches(struct sview *v, struct vpart *p, int32_t part,
                          const struct share_acquired *a, kc_writer *w, bool *first)
{
    for (int k = 0; k < a->nb; k++) {
        const struct share_wbatch *wb = &a->b[k];
        int64_t first_acq = wb->last;
        for (int j = 0; j < a->nr; j++)
            if (a->r[j].last >= wb->base && a->r[j].first <= wb->last && a->r[j].first < first_acq)
                first_acq = a->r[j].first < wb->base ? wb->base : a->r[j].first;
        int64_t skip = first_acq - wb->base; /* records before it were settled before */
        /* the first batch of a response may start below the fetch offset: clients drop
         * those records; later ones must not overlap what went before */
        int64_t vbase = *first && p->next - skip >= 0 ? p->next - skip : p->next;
        batch_set_base_offset(w->p + wb->at, vbase);
        map_add(p, part, vbase, wb->base, wb->last, first_acq);
        p->next = vbase + (wb->last - wb->base) + 1;
        *first = false;
    }
}

int16_t share_view_read(struct sview *v, struct conn *c, kc_str client_id, int32_t vp,
                        int64_t offset, int64_t max_bytes, kc_writer *w, int64_t *copied,
                        int64_t *hwm, int64_t *start)
{
    struct broker *b = c ? c->b : NULL;
    *copied = 0;
    if (!b || vp < 0 || vp >= v->nparts)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    struct vpart *p = &v->vp[vp];
    vpart_owner(b, v, vp, c, client_id, offset);
    struct share_member *m = vmember(vgroup(b, v), vp);
    if (!m)
        return KERR_UNKNOWN_SERVER;
    if (p->nmap > 4 * v->max_unacked + 64)
        map_prune(b, v, p, m);
    size_t at0 = w->len;
    bool first = true;
    for (int32_t n = 0; n < v->real_parts && w->len - at0 < (size_t)max_bytes; n++) {
        int64_t room = v->max_unacked - share_member_inflight(m);
        if (room <= 0)
            break;
        int32_t part = (v->rr + n) % v->real_parts;
        struct share_part *sp = real_part(b, v, part);
        if (!sp)
            continue;
        struct share_acquired a = {0};
        int16_t err =
            share_acquire(sp, m, (int32_t)room, max_bytes - (int64_t)(w->len - at0), w, &a);
        if (err == KERR_NONE)
            place_batches(v, p, part, &a, w, &first);
        share_acquired_free(&a);
        if (w->err)
            return KERR_UNKNOWN_SERVER;
    }
    if (v->real_parts > 0)
        v->rr = (v->rr + 1) % v->real_parts;
    if (w->len > at0)
        share_flush(b->shares); /* delivery counts: to the WAL, nobody waits for it */
    *copied = (int64_t)(w->len - at0);
    *hwm = p->next;
    *start = p->next;
    for (int k = 0; k < p->nmap; k++)
        if (p->map[k].vbase < *start)
            *start = p->map[k].vbase;
    return KERR_NONE;
}

void share_view_foreach_real(struct broker *b, struct sview *v, sview_part_fn *fn, void *arg)
{
    struct topic *t = topic_find_id(b->topics, v->real_id);
    for (int32_t i = 0; t && i < t->partitions; i++) {
        struct partition *p = topic_partition(b->topics, t, i);
        if (p)
            fn(arg, p);
    }
}

int16_t share_view_list_offset(struct sview *v, int32_t vp, int64_t ts, int64_t *offset)
{
    if (vp < 0 || vp >= v->nparts)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    struct vpart *p = &v->vp[vp];
    *offset = p->next;
    if (ts == -2)
        for (int k = 0; k < p->nmap; k++)
            if (p->map[k].vbase < *offset)
                *offset = p->map[k].vbase < 0 ? 0 : p->map[k].vbase;
    return KERR_NONE;
}

int64_t share_view_end_offset(struct broker *b, const char *name, int32_t vp)
{
    struct sview *v = share_view_find(b, name, strlen(name));
    return v && vp >= 0 && vp < v->nparts ? v->vp[vp].next : -1;
}

/* ---- commits and releases ---- */

static void wake_real(void *arg, struct partition *p)
{
    fetch_wake_partition(arg, p);
}

void share_view_committed(struct broker *b, const char *group, const char *view, size_t len,
                          int32_t vp, int64_t offset)
{
    struct sview *v = share_view_find(b, view, len);
    if (!v || vp < 0 || vp >= v->nparts)
        return;
    snprintf(v->last_group, sizeof v->last_group, "%s", group);
    struct vpart *p = &v->vp[vp];
    struct share_member *m = vmember(vgroup(b, v), vp);
    if (!m)
        return;
    int keep = 0;
    for (int k = 0; k < p->nmap; k++) {
        struct vmap *e = &p->map[k];
        map_settle(b, v, m, e, INT64_MIN, offset, SHARE_ACK_ACCEPT, -1);
        if (e->vbase + (e->rlast - e->rbase) >= offset)
            p->map[keep++] = *e;
    }
    p->nmap = keep;
    share_flush(b->shares);
    share_view_foreach_real(b, v, wake_real, b); /* v may have room again */
}

struct rel_ctx {
    struct broker *b;
    struct sview *v;
    int64_t n;
};

static void release_vpart(struct rel_ctx *x, int32_t i)
{
    struct share_member *m = vmember(vgroup(x->b, x->v), i);
    if (i < 0 || i >= x->v->nparts || !m)
        return;
    int64_t before = share_member_inflight(m);
    vpart_release_from(x->b, x->v, i, INT64_MIN, INT64_MIN); /* a pod gone: not a failure */
    share_member_release(m);
    x->n += before;
}

static void release_assigned(void *arg, const char *topic, size_t tlen, const int32_t *parts, int n)
{
    struct rel_ctx *x = arg;
    if (strlen(x->v->name) != tlen || memcmp(x->v->name, topic, tlen))
        return;
    for (int i = 0; i < n; i++)
        release_vpart(x, parts[i]);
}

int64_t share_view_release_member(struct broker *b, struct share_group *g, const char *member)
{
    int64_t total = -1;
    for (struct sview *v = b->views ? b->views->list : NULL; v; v = v->next) {
        if (strcmp(v->group, share_group_id(g)) != 0)
            continue;
        struct rel_ctx x = {b, v, 0};
        for (int32_t i = 0; i < v->nparts; i++)
            if (v->vp[i].client[0] && !strcmp(v->vp[i].client, member))
                release_vpart(&x, i);
        struct group *cg =
            v->last_group[0] ? group_find(b->groups, v->last_group, strlen(v->last_group)) : NULL;
        for (struct gmember *gm = cg ? cg->head : NULL; gm; gm = gm->next)
            if (!strcmp(gm->id, member) || (gm->client_id && !strcmp(gm->client_id, member)))
                group_decode_assignment(gm->assignment, gm->assignment_len, release_assigned, &x);
        total = (total < 0 ? 0 : total) + x.n;
    }
    return total;
}

/* ---- admin ---- */

struct share_group *share_view_group_of_classic(struct broker *b, const char *classic_group)
{
    for (struct sview *v = b->views ? b->views->list : NULL; v; v = v->next)
        if (!strcmp(v->last_group, classic_group))
            return vgroup(b, v);
    return NULL;
}

/* Records in flight per virtual partition, from the view's members ("v<i>"). */
struct vheld {
    int64_t *held;
    int32_t n;
};

static void vheld_one(void *arg, struct share_member *m)
{
    struct vheld *h = arg;
    const char *id = share_member_id(m);
    char *end;
    if (id[0] != 'v' || id[1] < '0' || id[1] > '9')
        return;
    long i = strtol(id + 1, &end, 10);
    if (!*end && i >= 0 && i < h->n)
        h->held[i] = share_member_inflight(m);
}

cJSON *share_view_json(struct broker *b, struct share_group *g)
{
    for (struct sview *v = b->views ? b->views->list : NULL; v; v = v->next) {
        if (strcmp(v->group, share_group_id(g)) != 0)
            continue;
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "virtual_partitions");
        cJSON_AddStringToObject(o, "view", v->name);
        cJSON_AddNumberToObject(o, "partitions", v->nparts);
        cJSON_AddNumberToObject(o, "max_unacked", v->max_unacked);
        if (v->last_group[0])
            cJSON_AddStringToObject(o, "classic_group", v->last_group);
        /* one pass over the members, not a lookup (a list walk) per virtual partition:
         * with 65536 of them that was minutes on the loop, and created every member */
        struct vheld h = {calloc((size_t)v->nparts + 1, sizeof *h.held), v->nparts};
        if (h.held)
            share_group_foreach_member(g, vheld_one, &h);
        for (int32_t i = 0; arr && i < v->nparts; i++) {
            int64_t held = h.held ? h.held[i] : 0;
            if (!v->vp[i].conn_id && !held)
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "partition", i);
            cJSON_AddStringToObject(e, "client_id", v->vp[i].client);
            cJSON_AddNumberToObject(e, "next_offset", (double)v->vp[i].next);
            cJSON_AddNumberToObject(e, "inflight", (double)held);
            cJSON_AddItemToArray(arr, e);
        }
        free(h.held);
        return o;
    }
    return NULL;
}
