/* sgroup.c: the KIP-932 share-group coordinator (membership, member epochs, assignment)
 * and the share sessions of this broker. Record states are the share engine's (share.c);
 * this file only decides who is in a group and which partitions each member fetches. */
#include "sgroup.h"
#include "hash.h"

#include "broker.h"
#include "log.h"
#include "share.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct sgroups {
    struct broker *b;
    struct htab tab;
};


static bool view_is(kc_str s, const char *c) { return kc_str_eq(s, c); }

/* ---- registry ---- */

struct sgroups *sgroups_new(struct broker *b)
{
    struct sgroups *gs = calloc(1, sizeof *gs);
    if (!gs)
        return NULL;
    gs->b = b;
    return gs;
}

static void member_free(struct smember *m);

void sgroups_free(struct sgroups *gs)
{
    if (!gs)
        return;
    HTAB_FOREACH(&gs->tab, i, n, nx) {
        struct sgroup *g = HTAB_ENTRY(n, struct sgroup, hnode);
        for (struct smember *m = g->head, *mn; m; m = mn) {
            mn = m->next;
            ev_timer_stop(gs->b->loop, &m->timer);
            member_free(m);
        }
        free(g->id);
        free(g);
    }
    htab_free(&gs->tab);
    free(gs);
}

size_t sgroups_count(const struct sgroups *gs) { return gs->tab.n; }

struct sgroup *sgroup_find(struct sgroups *gs, const char *id, size_t len)
{
    for (struct hnode *n = htab_first(&gs->tab, hash_bytes(id, len)); n; n = htab_next(n)) {
        struct sgroup *g = HTAB_ENTRY(n, struct sgroup, hnode);
        if (g->id_len == len && memcmp(g->id, id, len) == 0)
            return g;
    }
    return NULL;
}

static struct sgroup *group_get(struct sgroups *gs, kc_str id)
{
    struct sgroup *g = sgroup_find(gs, id.p, (size_t)id.len);
    if (g)
        return g;
    if (!(g = calloc(1, sizeof *g)) || !(g->id = kc_str_dup(id))) {
        free(g);
        return NULL;
    }
    g->gs = gs;
    g->id_len = (size_t)id.len;
    if (htab_insert(&gs->tab, &g->hnode, hash_bytes(g->id, g->id_len)) < 0) {
        free(g->id);
        free(g);
        return NULL;
    }
    return g;
}

/* Frees g once nothing is left in it. */
static void group_drop_if_empty(struct sgroup *g)
{
    struct sgroups *gs = g->gs;
    if (g->head)
        return;
    htab_remove(&gs->tab, &g->hnode);
    free(g->id);
    free(g);
}

void sgroups_foreach(struct sgroups *gs, sgroup_fn *fn, void *arg)
{
    HTAB_FOREACH(&gs->tab, i, n, nx)
        fn(arg, HTAB_ENTRY(n, struct sgroup, hnode));
}

const char *sgroup_state_name(const struct sgroup *g)
{
    return g && g->nmembers > 0 ? "Stable" : "Empty";
}

/* ---- members ---- */

static void free_topics(struct smember *m)
{
    for (int i = 0; i < m->ntopics; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = NULL;
    m->ntopics = 0;
}

static void free_assign(struct sassign *a, int n)
{
    for (int i = 0; i < n; i++)
        free(a[i].name);
    free(a);
}

static void member_free(struct smember *m)
{
    free_topics(m);
    free_assign(m->assign, m->nassign);
    free(m->parts);
    free(m->id);
    free(m->client_id);
    free(m->client_host);
    free(m->rack);
    free(m);
}

static struct shares *engine(const struct smember *m) { return m->g->gs->b->shares; }

static struct share_member *engine_member(struct smember *m, bool create)
{
    struct shares *ss = engine(m);
    if (!ss)
        return NULL;
    struct share_group *eg = share_group_get(ss, m->g->id, m->g->id_len, create);
    return eg ? share_member_get(eg, m->id, strlen(m->id), create) : NULL;
}

struct share_member *sgroup_engine_member(struct smember *m) { return engine_member(m, true); }

int64_t sgroup_release_client(struct sgroups *gs, const char *id, const char *client_id)
{
    struct sgroup *g = gs ? sgroup_find(gs, id, strlen(id)) : NULL;
    int64_t n = -1;
    for (struct smember *m = g ? g->head : NULL; m; m = m->next) {
        if (!m->client_id || strcmp(m->client_id, client_id) != 0)
            continue;
        struct share_member *sm = engine_member(m, false);
        n = (n < 0 ? 0 : n) + (sm ? share_member_release(sm) : 0);
    }
    return n;
}

void sgroup_member_remove(struct smember *m, const char *why)
{
    struct sgroup *g = m->g;
    struct share_member *sm = engine_member(m, false);
    int64_t n = sm ? share_member_leave(sm) : 0;
    if (m->joined)
        log_info("share group %s: member %s leaves (%s); %lld records released", g->id, m->id,
                 why, (long long)n);
    ev_timer_stop(g->gs->b->loop, &m->timer);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        g->tail = m->prev;
    if (m->joined) {
        g->nmembers--;
        g->epoch++;
    }
    g->nall--;
    member_free(m);
    group_drop_if_empty(g);
}

static void on_session_timeout(struct ev_loop *l, void *arg)
{
    sgroup_member_remove(arg, "session timeout");
}

static void member_touch(struct smember *m)
{
    ev_timer_start(m->g->gs->b->loop, &m->timer, (int64_t)SGROUP_SESSION_MS * 1000);
}

static struct smember *member_find(struct sgroup *g, kc_str id)
{
    struct smember *m = g->head;
    while (m && !view_is(id, m->id))
        m = m->next;
    return m;
}

static struct smember *member_new(struct sgroup *g, char *id)
{
    struct smember *m = calloc(1, sizeof *m);
    if (!m) {
        free(id);
        return NULL;
    }
    m->g = g;
    m->id = id;
    ev_timer_init(&m->timer, on_session_timeout, m);
    m->prev = g->tail;
    if (g->tail)
        g->tail->next = m;
    else
        g->head = m;
    g->tail = m;
    g->nall++;
    member_touch(m);
    return m;
}

struct smember *sgroup_member(struct sgroups *gs, kc_str group_id, kc_str member_id, bool create)
{
    if (group_id.len <= 0 || member_id.len <= 0 || group_id.len > SHARE_GROUP_ID_MAX ||
        member_id.len > SHARE_MEMBER_ID_MAX)
        return NULL;
    struct sgroup *g = create ? group_get(gs, group_id) : sgroup_find(gs, group_id.p,
                                                                      (size_t)group_id.len);
    if (!g)
        return NULL;
    struct smember *m = member_find(g, member_id);
    if (!m && create) {
        char *id = kc_str_dup(member_id);
        m = id ? member_new(g, id) : NULL;
    }
    if (m)
        member_touch(m);
    else
        group_drop_if_empty(g);
    return m;
}

/* ---- assignment ---- */

static int assign_cmp(const void *a, const void *b)
{
    return memcmp(((const struct sassign *)a)->id, ((const struct sassign *)b)->id, 16);
}

/* Every partition of every subscribed topic that exists, sorted by topic id. Returns the
 * count, or -1 out of memory. */
static int assign_compute(struct smember *m, struct sassign **out)
{
    struct topics *ts = m->g->gs->b->topics;
    struct sassign *a = m->ntopics ? calloc((size_t)m->ntopics, sizeof *a) : NULL;
    int n = 0;
    *out = NULL;
    if (m->ntopics && !a)
        return -1;
    for (int i = 0; i < m->ntopics; i++) {
        struct topic *t = topic_find(ts, m->topics[i], strlen(m->topics[i]));
        if (!t || t->partitions <= 0)
            continue;
        memcpy(a[n].id, t->id, 16);
        a[n].partitions = t->partitions;
        if (!(a[n].name = strdup(t->name))) {
            free_assign(a, n);
            return -1;
        }
        n++;
    }
    if (n > 1) /* a is NULL when the member subscribes to nothing: qsort wants a pointer */
        qsort(a, (size_t)n, sizeof *a, assign_cmp);
    *out = a;
    return n;
}

static bool assign_equal(const struct sassign *a, int na, const struct sassign *b, int nb)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (memcmp(a[i].id, b[i].id, 16) != 0 || a[i].partitions != b[i].partitions)
            return false;
    return true;
}

/* Recomputes m's assignment; a change moves the member to a new epoch. Returns whether
 * it changed (or -1 out of memory). */
static int assign_refresh(struct smember *m)
{
    struct sassign *a;
    int n = assign_compute(m, &a);
    if (n < 0)
        return -1;
    if (assign_equal(a, n, m->assign, m->nassign) && m->epoch > 0) {
        free_assign(a, n);
        return 0;
    }
    free_assign(m->assign, m->nassign);
    m->assign = a;
    m->nassign = n;
    m->g->epoch++;
    m->prev_epoch = m->epoch;
    m->epoch = m->g->epoch;
    return 1;
}

static int set_topics(struct smember *m, const kc_str *topics, int n)
{
    char **t = n ? calloc((size_t)n, sizeof *t) : NULL;
    if (n && !t)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!(t[i] = kc_str_dup(topics[i]))) {
            while (i-- > 0)
                free(t[i]);
            free(t);
            return -1;
        }
    }
    free_topics(m);
    m->topics = t;
    m->ntopics = n;
    return 0;
}

static void set_str(char **dst, kc_str v)
{
    if (v.len < 0)
        return;
    char *s = kc_str_dup(v);
    if (s) {
        free(*dst);
        *dst = s;
    }
}

/* A member id for a client that sent none (Kafka 4 clients make up their own). */
static char *new_member_id(void)
{
    uint8_t u[16];
    char *s = malloc(33);
    if (!s || getrandom(u, sizeof u, 0) != (ssize_t)sizeof u) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 16; i++)
        snprintf(s + 2 * i, 3, "%02x", u[i]);
    return s;
}

static int hb_fail(struct sg_heartbeat_result *res, int16_t err, const char *msg)
{
    res->err = err;
    res->msg = msg;
    res->member = NULL;
    return 0;
}

/* Epoch 0: join (or rejoin with the same id, which starts the member over). */
static int hb_join(struct sgroups *gs, const struct sg_heartbeat *hb,
                   struct sg_heartbeat_result *res)
{
    if (!hb->topics)
        return hb_fail(res, KERR_INVALID_REQUEST, "a joining member must subscribe");
    struct sgroup *g = group_get(gs, hb->group_id);
    if (!g)
        return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
    struct smember *m = hb->member_id.len > 0 ? member_find(g, hb->member_id) : NULL;
    if (!m && gs->b->cfg.group_max_size > 0 && g->nmembers >= gs->b->cfg.group_max_size) {
        group_drop_if_empty(g);
        return hb_fail(res, 81 /* GROUP_MAX_SIZE_REACHED */, "the share group is full");
    }
    if (!m) {
        char *id = hb->member_id.len > 0 ? kc_str_dup(hb->member_id) : new_member_id();
        if (!id || !(m = member_new(g, id))) {
            group_drop_if_empty(g);
            return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
        }
    }
    if (!m->joined) {
        m->joined = true;
        g->nmembers++;
        log_info("share group %s: member %s joins", g->id, m->id);
    }
    m->epoch = 0; /* a join always gets a fresh epoch and assignment */
    if (set_topics(m, hb->topics, hb->ntopics) < 0)
        return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
    set_str(&m->client_id, hb->client_id);
    set_str(&m->rack, hb->rack_id);
    free(m->client_host);
    m->client_host = strdup(hb->client_host ? hb->client_host : "");
    member_touch(m);
    if (assign_refresh(m) < 0)
        return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
    res->member = m;
    res->member_epoch = m->epoch;
    res->send_assignment = true;
    return 0;
}

/* A member leaves the group. A client that closes sends its final acknowledgements
 * (share session epoch -1) around its leave heartbeat, in either order, so an open
 * session stays until it closes or times out; records go back when it does. */
static void member_leave(struct smember *m)
{
    if (!m->session) {
        sgroup_member_remove(m, "left the group");
        return;
    }
    log_info("share group %s: member %s leaves; its share session stays open", m->g->id, m->id);
    m->joined = false;
    m->g->nmembers--;
    m->g->epoch++;
    free_assign(m->assign, m->nassign);
    m->assign = NULL;
    m->nassign = 0;
}

/* Epoch -1 (leave) or the member's current or previous epoch (heartbeat). */
static int hb_member(struct sgroups *gs, const struct sg_heartbeat *hb,
                     struct sg_heartbeat_result *res)
{
    if (hb->member_id.len <= 0)
        return hb_fail(res, KERR_INVALID_REQUEST, "MemberId can't be empty");
    struct sgroup *g = sgroup_find(gs, hb->group_id.p, (size_t)hb->group_id.len);
    struct smember *m = g ? member_find(g, hb->member_id) : NULL;
    if (hb->member_epoch == -1) {
        if (m && m->joined)
            member_leave(m);
        res->member_epoch = -1;
        return 0;
    }
    if (!m || !m->joined)
        return hb_fail(res, 25 /* UNKNOWN_MEMBER_ID */, "unknown member");
    if (hb->member_epoch != m->epoch && hb->member_epoch != m->prev_epoch)
        return hb_fail(res, SGERR_FENCED_MEMBER_EPOCH, "the member epoch is fenced");
    member_touch(m);
    if (hb->topics && set_topics(m, hb->topics, hb->ntopics) < 0)
        return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
    set_str(&m->rack, hb->rack_id);
    int changed = assign_refresh(m);
    if (changed < 0)
        return hb_fail(res, KERR_UNKNOWN_SERVER, "out of memory");
    res->member = m;
    res->member_epoch = m->epoch;
    /* a response with a new epoch may have been lost: send the assignment again */
    res->send_assignment = changed || hb->member_epoch != m->epoch || hb->topics;
    return 0;
}

void sgroup_heartbeat(struct sgroups *gs, const struct sg_heartbeat *hb,
                      struct sg_heartbeat_result *res)
{
    *res = (struct sg_heartbeat_result){0};
    if (hb->group_id.len <= 0 || hb->group_id.len > SHARE_GROUP_ID_MAX)
        hb_fail(res, KERR_INVALID_REQUEST, "GroupId can't be empty");
    else if (hb->member_id.len > SHARE_MEMBER_ID_MAX || hb->ntopics > SGROUP_MAX_TOPICS)
        hb_fail(res, KERR_INVALID_REQUEST, "member id or subscription too large");
    else if (hb->member_epoch == 0)
        hb_join(gs, hb, res);
    else
        hb_member(gs, hb, res);
}

/* ---- share sessions ---- */

int16_t sgroup_session_check(const struct smember *m, int32_t epoch)
{
    if (epoch == 0)
        return KERR_NONE;
    if (!m || !m->session)
        return SERR_SHARE_SESSION_NOT_FOUND;
    if (epoch != -1 && epoch != m->session_epoch)
        return SERR_INVALID_SHARE_SESSION_EPOCH;
    return KERR_NONE;
}

static void release_held(struct smember *m)
{
    struct share_member *sm = engine_member(m, false);
    if (sm)
        share_member_release(sm);
}

int sgroup_session_open(struct smember *m)
{
    if (m->session)
        release_held(m);
    m->session = true;
    m->session_epoch = 0;
    m->nparts = 0;
    return 0;
}

void sgroup_session_advance(struct smember *m)
{
    m->session_epoch = m->session_epoch == INT32_MAX ? 1 : m->session_epoch + 1;
}

void sgroup_session_close(struct smember *m)
{
    release_held(m);
    m->session = false;
    m->nparts = 0;
    free(m->parts);
    m->parts = NULL;
    m->pcap = 0;
    if (!m->joined)
        sgroup_member_remove(m, "share session closed");
}

static int part_index(const struct smember *m, const uint8_t id[16], int32_t partition)
{
    for (int i = 0; i < m->nparts; i++)
        if (m->parts[i].partition == partition && memcmp(m->parts[i].id, id, 16) == 0)
            return i;
    return -1;
}

bool sgroup_session_has(const struct smember *m, const uint8_t id[16], int32_t partition)
{
    return part_index(m, id, partition) >= 0;
}

int sgroup_session_add(struct smember *m, const uint8_t id[16], int32_t partition)
{
    if (part_index(m, id, partition) >= 0)
        return 0;
    if (m->nparts >= SGROUP_MAX_SESSION_PARTS)
        return -1;
    if (m->nparts == m->pcap) {
        int cap = m->pcap ? m->pcap * 2 : 8;
        struct stp *p = realloc(m->parts, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        m->parts = p;
        m->pcap = cap;
    }
    memcpy(m->parts[m->nparts].id, id, 16);
    m->parts[m->nparts].partition = partition;
    m->nparts++;
    return 0;
}

void sgroup_session_forget(struct smember *m, const uint8_t id[16], int32_t partition)
{
    int i = part_index(m, id, partition);
    if (i < 0)
        return;
    m->parts[i] = m->parts[--m->nparts];
    struct shares *ss = engine(m);
    struct share_group *eg = ss ? share_group_get(ss, m->g->id, m->g->id_len, false) : NULL;
    struct share_part *sp = eg ? share_part_find(eg, id, partition) : NULL;
    struct share_member *sm = engine_member(m, false);
    if (sp && sm)
        share_settle(sp, sm, share_part_start(sp), share_part_next(sp) - 1, SHARE_ACK_RELEASE);
}
