/* group.c: the classic group coordinator, modelled on Kafka's GroupCoordinator. A group
 * moves Empty -> PreparingRebalance (members (re)join; the first join of an Empty group
 * waits group.initial.rebalance.delay.ms for company) -> CompletingRebalance (the leader
 * computes assignments) -> Stable (everyone has its assignment), and back to
 * PreparingRebalance whenever membership or subscriptions change. Members that stop
 * heartbeating are expired by their session timer; a closed connection alone removes
 * nobody, as in Kafka. Groups live in a hash table, members in a list per group. */
#include "group.h"
#include "hash.h"

#include "broker.h"
#include "ev.h"
#include "log.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

struct groups {
    struct broker *b;
    struct htab tab;
    const struct group_ops *ops;
    uint64_t rebalances;
    struct ev_timer sweep;
    bool released; /* draining: parked calls were answered */
};

extern const struct group_ops kapi_group_ops; /* kapi_group.c */

static const char *const state_names[] = {
    [GS_EMPTY] = "Empty",
    [GS_PREPARING] = "PreparingRebalance",
    [GS_COMPLETING] = "CompletingRebalance",
    [GS_STABLE] = "Stable",
    [GS_DEAD] = "Dead",
};

const char *group_state_name(int state)
{
    return state >= GS_EMPTY && state <= GS_DEAD ? state_names[state] : "Unknown";
}

int group_state_parse(const char *s, size_t len)
{
    for (int i = GS_EMPTY; i <= GS_DEAD; i++)
        if (strlen(state_names[i]) == len && !strncasecmp(state_names[i], s, len))
            return i;
    return -1;
}

/* ---- small helpers ---- */


/* Whether a (non-null) view equals the C string c; a NULL c equals only a null view. */
static bool str_is(kc_str s, const char *c)
{
    return kc_str_eq(s, c);
}

/* A view as a heap C string; a null view gives NULL, out of memory gives NULL too. */
static char *str_dup(kc_str s)
{
    return kc_str_dup(s);
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* A new member id: <client_id>-<uuid4>, as Kafka makes them. */
static char *new_member_id(kc_str client_id)
{
    uint8_t u[16];
    if (getrandom(u, sizeof u, 0) != (ssize_t)sizeof u)
        for (int i = 0; i < 16; i++)
            u[i] = (uint8_t)(rand() & 0xff);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    int clen = client_id.len > 0 ? client_id.len : 0;
    if (clen > GROUP_STR_MAX)
        clen = GROUP_STR_MAX;
    char *id = malloc((size_t)clen + 38);
    if (!id)
        return NULL;
    char *p = id;
    for (int i = 0; i < clen; i++) { /* ids are C strings: no NULs or control bytes */
        unsigned char c = (unsigned char)client_id.p[i];
        *p++ = c < 0x20 || c == 0x7f ? '_' : (char)c;
    }
    *p++ = '-';
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", u[i]);
    }
    *p = 0;
    return id;
}

struct broker *groups_broker(const struct groups *gs)
{
    return gs->b;
}
size_t groups_count(const struct groups *gs)
{
    return gs->tab.n;
}
uint64_t groups_rebalances(const struct groups *gs)
{
    return gs->rebalances;
}
void groups_set_ops(struct groups *gs, const struct group_ops *ops)
{
    gs->ops = ops;
}

static void set_state(struct group *g, int state)
{
    g->state = state;
    g->state_ms = ev_wall_ms();
}

/* ---- the registry ---- */

struct group *group_find(struct groups *gs, const char *id, size_t len)
{
    for (struct hnode *n = htab_first(&gs->tab, hash_bytes(id, len)); n; n = htab_next(n)) {
        struct group *g = HTAB_ENTRY(n, struct group, hnode);
        if (g->id_len == len && !memcmp(g->id, id, len))
            return g;
    }
    return NULL;
}

static void on_rebalance_timer(struct ev_loop *l, void *arg);

struct group *group_get_or_create(struct groups *gs, const char *id, size_t len)
{
    struct group *g = group_find(gs, id, len);
    if (g)
        return g;
    if (len == 0 || len > GROUP_ID_MAX)
        return NULL;
    g = calloc(1, sizeof *g);
    if (!g || !(g->id = malloc(len + 1))) {
        free(g);
        return NULL;
    }
    memcpy(g->id, id, len);
    g->id[len] = 0;
    g->id_len = len;
    g->gs = gs;
    g->state = GS_EMPTY;
    g->state_ms = ev_wall_ms();
    ev_timer_init(&g->rebalance, on_rebalance_timer, g);
    if (htab_insert(&gs->tab, &g->hnode, hash_bytes(id, len)) < 0) {
        free(g->id);
        free(g);
        return NULL;
    }
    return g;
}

void groups_foreach(struct groups *gs, group_fn *fn, void *arg)
{
    HTAB_FOREACH(&gs->tab, i, n, nx)
        fn(arg, HTAB_ENTRY(n, struct group, hnode));
}

static void member_free(struct groups *gs, struct gmember *m)
{
    ev_timer_stop(gs->b->loop, &m->session);
    for (int i = 0; i < m->nprotos; i++) {
        free(m->protos[i].name);
        free(m->protos[i].meta);
    }
    free(m->protos);
    free(m->assignment);
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free(m);
}

static void pending_free(struct groups *gs, struct gpending *p)
{
    ev_timer_stop(gs->b->loop, &p->timer);
    free(p->id);
    free(p);
}

/* Frees g; it must already be out of the table, with no parked waiters. */
static void group_free(struct groups *gs, struct group *g)
{
    ev_timer_stop(gs->b->loop, &g->rebalance);
    for (struct gmember *m = g->head, *n; m; m = n) {
        n = m->next;
        if (m->join_w)
            m->join_w->m = NULL;
        if (m->sync_w)
            m->sync_w->m = NULL;
        member_free(gs, m);
    }
    for (struct gpending *p = g->pending, *n; p; p = n) {
        n = p->next;
        pending_free(gs, p);
    }
    group_offsets_free(g);
    free(g->protocol_type);
    free(g->protocol_name);
    free(g->leader);
    free(g->id);
    free(g);
}

/* ---- answering parked calls ---- */

static void answer_join(struct groups *gs, struct gmember *m, const struct gjoin_result *r)
{
    struct gwaiter *w = m->join_w;
    if (!w)
        return;
    m->join_w = NULL;
    w->m = NULL;
    gs->ops->join_done(w, r);
}

static void join_error_w(struct groups *gs, struct gwaiter *w, int16_t err, const char *member_id)
{
    struct gjoin_result r = {
        .err = err, .member_id = member_id ? member_id : "", .generation = -1, .leader = ""};
    w->m = NULL;
    gs->ops->join_done(w, &r);
}

static void answer_join_error(struct groups *gs, struct gmember *m, int16_t err)
{
    struct gwaiter *w = m->join_w;
    if (!w)
        return;
    m->join_w = NULL;
    join_error_w(gs, w, err, err == GERR_FENCED_INSTANCE_ID ? m->id : "");
}

static void answer_sync(struct groups *gs, struct gmember *m, int16_t err)
{
    struct gwaiter *w = m->sync_w;
    if (!w)
        return;
    m->sync_w = NULL;
    w->m = NULL;
    if (err)
        gs->ops->sync_done(w, err, m->g, NULL, 0);
    else
        gs->ops->sync_done(w, err, m->g, m->assignment, m->assignment_len);
}

void group_waiter_cancel(struct gwaiter *w)
{
    struct gmember *m = w->m;
    if (!m)
        return;
    if (m->join_w == w)
        m->join_w = NULL;
    if (m->sync_w == w)
        m->sync_w = NULL;
    w->m = NULL;
}

/* The current generation as member m sees it. */
static struct gjoin_result generation_view(const struct group *g, const struct gmember *m)
{
    return (struct gjoin_result){
        .err = 0,
        .member_id = m->id,
        .generation = g->generation,
        .protocol_type = g->protocol_type,
        .protocol_name = g->protocol_name,
        .leader = g->leader ? g->leader : "",
        .with_members = g->leader && !strcmp(g->leader, m->id),
        .g = g,
    };
}

/* ---- members ---- */

static struct gmember *member_find(const struct group *g, kc_str id)
{
    if (id.len <= 0)
        return NULL;
    for (struct gmember *m = g->head; m; m = m->next)
        if (str_is(id, m->id))
            return m;
    return NULL;
}

static struct gmember *member_by_instance(const struct group *g, kc_str iid)
{
    if (iid.len < 0)
        return NULL;
    for (struct gmember *m = g->head; m; m = m->next)
        if (m->instance_id && str_is(iid, m->instance_id))
            return m;
    return NULL;
}

/* KIP-345: a known instance id now belongs to another member id. */
static bool is_fenced(const struct group *g, kc_str member_id, kc_str instance_id)
{
    const struct gmember *m = member_by_instance(g, instance_id);
    return m && !str_is(member_id, m->id);
}

static bool is_leader(const struct group *g, const struct gmember *m)
{
    return g->leader && !strcmp(g->leader, m->id);
}

static void set_awaiting(struct gmember *m, bool on)
{
    if (m->awaiting_join != on)
        m->g->nawaiting += on ? 1 : -1;
    m->awaiting_join = on;
}

static void member_touch(struct groups *gs, struct gmember *m)
{
    ev_timer_start(gs->b->loop, &m->session, (int64_t)m->session_ms * 1000);
}

const struct gproto *gmember_protocol(const struct gmember *m, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < m->nprotos; i++)
        if (!strcmp(m->protos[i].name, name))
            return &m->protos[i];
    return NULL;
}

static bool member_has_protocol(const struct gmember *m, kc_str name)
{
    for (int i = 0; i < m->nprotos; i++)
        if (str_is(name, m->protos[i].name))
            return true;
    return false;
}

/* Kafka's member.matches(): the same protocols with the same metadata, in order. */
static bool protocols_equal(const struct gmember *m, const struct gjoin_req *rq)
{
    if (m->nprotos != rq->nprotos)
        return false;
    for (int i = 0; i < m->nprotos; i++) {
        const struct gproto_in *p = &rq->protos[i];
        if (!str_is(p->name, m->protos[i].name) || p->meta.len != m->protos[i].meta_len ||
            (p->meta.len > 0 && memcmp(p->meta.p, m->protos[i].meta, (size_t)p->meta.len)))
            return false;
    }
    return true;
}

/* Replaces m's protocols and timeouts with the request's. Returns 0 or -1 (OOM). */
static int member_update(struct gmember *m, const struct gjoin_req *rq)
{
    struct gproto *np = calloc((size_t)rq->nprotos, sizeof *np);
    if (!np)
        return -1;
    for (int i = 0; i < rq->nprotos; i++) {
        const struct gproto_in *p = &rq->protos[i];
        np[i].name = str_dup(p->name);
        np[i].meta_len = p->meta.len > 0 ? p->meta.len : 0;
        np[i].meta = malloc(np[i].meta_len ? (size_t)np[i].meta_len : 1);
        if (!np[i].name || !np[i].meta) {
            for (int j = 0; j <= i; j++) {
                free(np[j].name);
                free(np[j].meta);
            }
            free(np);
            return -1;
        }
        if (np[i].meta_len)
            memcpy(np[i].meta, p->meta.p, (size_t)np[i].meta_len);
    }
    for (int i = 0; i < m->nprotos; i++) {
        free(m->protos[i].name);
        free(m->protos[i].meta);
    }
    free(m->protos);
    m->protos = np;
    m->nprotos = rq->nprotos;
    m->session_ms = rq->session_ms;
    m->rebalance_ms = rq->rebalance_ms;
    return 0;
}

/* Whether a (re)joining member's protocols fit the group; self is excluded from the
 * members that must support them. */
static bool supports_protocols(const struct group *g, const struct gjoin_req *rq,
                               const struct gmember *self)
{
    int others = g->nmembers - (self ? 1 : 0);
    if (rq->protocol_type.len <= 0 || rq->nprotos == 0)
        return false;
    if (others == 0)
        return true;
    if (!g->protocol_type || !str_is(rq->protocol_type, g->protocol_type))
        return false;
    for (int i = 0; i < rq->nprotos; i++) {
        int n = 0;
        for (const struct gmember *m = g->head; m; m = m->next)
            if (m != self && member_has_protocol(m, rq->protos[i].name))
                n++;
        if (n == others)
            return true;
    }
    return false;
}

/* Kafka's selectProtocol: among the protocols every member supports, the one most
 * members list first; ties go to the earlier one in the first member's order. */
static const char *select_protocol(const struct group *g)
{
    const struct gmember *h = g->head;
    const char *best = NULL;
    int best_votes = -1;
    if (!h)
        return NULL;
    for (int i = 0; i < h->nprotos; i++) {
        const char *cand = h->protos[i].name;
        bool all = true;
        for (const struct gmember *m = g->head; m && all; m = m->next)
            all = gmember_protocol(m, cand) != NULL;
        if (!all)
            continue;
        int votes = 0;
        for (const struct gmember *m = g->head; m; m = m->next)
            for (int j = 0; j < m->nprotos; j++) {
                const char *name = m->protos[j].name;
                bool supported = true;
                for (const struct gmember *o = g->head; o && supported; o = o->next)
                    supported = gmember_protocol(o, name) != NULL;
                if (!supported)
                    continue;
                votes += !strcmp(name, cand);
                break;
            }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

/* ---- the state machine ---- */

static void prepare_rebalance(struct groups *gs, struct group *g, const char *reason);
static void try_complete_join(struct groups *gs, struct group *g);

static void maybe_prepare_rebalance(struct groups *gs, struct group *g, const char *reason)
{
    if (g->state == GS_STABLE || g->state == GS_COMPLETING || g->state == GS_EMPTY)
        prepare_rebalance(gs, g, reason);
}

/* Takes m out of g's list and frees it; no state change. */
static void member_detach(struct groups *gs, struct group *g, struct gmember *m)
{
    answer_join_error(gs, m, GERR_UNKNOWN_MEMBER_ID);
    answer_sync(gs, m, GERR_UNKNOWN_MEMBER_ID);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        g->tail = m->prev;
    g->nmembers--;
    set_awaiting(m, false);
    if (is_leader(g, m))
        set_str(&g->leader, g->head ? g->head->id : NULL);
    member_free(gs, m);
}

/* Kafka's removeMemberAndUpdateGroup. */
static void remove_member(struct groups *gs, struct group *g, struct gmember *m, const char *reason)
{
    log_info("group %s: member %s leaves (%s)", g->id, m->id, reason);
    member_detach(gs, g, m);
    if (g->state == GS_STABLE || g->state == GS_COMPLETING)
        maybe_prepare_rebalance(gs, g, reason);
    else if (g->state == GS_PREPARING)
        try_complete_join(gs, g);
}

static void on_session(struct ev_loop *l, void *arg)
{
    struct gmember *m = arg;
    struct group *g = m->g;
    struct groups *gs = g->gs;
    if (m->awaiting_join || m->sync_w) {
        member_touch(gs, m); /* a parked call keeps its member alive */
        return;
    }
    remove_member(gs, g, m, "session timeout");
}

static void persist(struct groups *gs, struct group *g)
{
    if (group_persist(gs, g) < 0)
        log_warn("group %s: could not store the group record", g->id);
}

static void complete_join(struct groups *gs, struct group *g)
{
    ev_timer_stop(gs->b->loop, &g->rebalance);
    g->initial_delay = false;
    for (struct gmember *m = g->head, *n; m; m = n) {
        n = m->next;
        if (!m->awaiting_join) {
            log_info("group %s: member %s did not rejoin in time; removed", g->id, m->id);
            member_detach(gs, g, m);
        }
    }
    g->generation++;
    if (!g->nmembers) {
        set_str(&g->protocol_name, NULL);
        set_str(&g->leader, NULL);
        set_state(g, GS_EMPTY);
        persist(gs, g);
        log_info("group %s: empty at generation %d", g->id, g->generation);
        return;
    }
    set_str(&g->protocol_name, select_protocol(g));
    if (!g->leader)
        set_str(&g->leader, g->head->id);
    set_state(g, GS_COMPLETING);
    persist(gs, g);
    log_info("group %s: generation %d with %d members, protocol %s, leader %s", g->id,
             g->generation, g->nmembers, g->protocol_name ? g->protocol_name : "-",
             g->leader ? g->leader : "-");
    for (struct gmember *m = g->head; m; m = m->next) {
        set_awaiting(m, false);
        struct gjoin_result r = generation_view(g, m);
        answer_join(gs, m, &r);
        member_touch(gs, m);
    }
}

static void try_complete_join(struct groups *gs, struct group *g)
{
    if (g->state == GS_PREPARING && !g->initial_delay && g->nawaiting == g->nmembers &&
        g->npending == 0)
        complete_join(gs, g);
}

static void on_rebalance_timer(struct ev_loop *l, void *arg)
{
    struct group *g = arg;
    struct groups *gs = g->gs;
    if (g->state != GS_PREPARING)
        return;
    if (g->initial_delay && g->new_member_added && g->initial_remaining_ms > 0) {
        int64_t d = gs->b->cfg.group_initial_rebalance_delay_ms;
        if (d > g->initial_remaining_ms)
            d = g->initial_remaining_ms;
        g->initial_remaining_ms -= d;
        g->new_member_added = false;
        ev_timer_start(l, &g->rebalance, d * 1000);
        return;
    }
    complete_join(gs, g);
}

static int32_t max_rebalance_ms(const struct group *g)
{
    int32_t t = 0;
    for (const struct gmember *m = g->head; m; m = m->next)
        if (m->rebalance_ms > t)
            t = m->rebalance_ms;
    return t;
}

static void prepare_rebalance(struct groups *gs, struct group *g, const char *reason)
{
    if (g->state == GS_COMPLETING)
        for (struct gmember *m = g->head; m; m = m->next) {
            free(m->assignment);
            m->assignment = NULL;
            m->assignment_len = 0;
            answer_sync(gs, m, GERR_REBALANCE_IN_PROGRESS);
        }
    bool initial = g->state == GS_EMPTY;
    int64_t rto = max_rebalance_ms(g);
    set_state(g, GS_PREPARING);
    gs->rebalances++;
    log_info("group %s: preparing rebalance after generation %d: %s", g->id, g->generation, reason);
    if (initial) {
        int64_t d = gs->b->cfg.group_initial_rebalance_delay_ms;
        g->initial_delay = true;
        g->new_member_added = false;
        g->initial_remaining_ms = rto > d ? rto - d : 0;
        ev_timer_start(gs->b->loop, &g->rebalance, d * 1000);
        return;
    }
    g->initial_delay = false;
    ev_timer_start(gs->b->loop, &g->rebalance, rto * 1000);
    try_complete_join(gs, g);
}

/* Parks w as m's join call; an earlier parked join of m gives way. */
static void park_join(struct groups *gs, struct gmember *m, struct gwaiter *w)
{
    if (m->join_w && m->join_w != w)
        answer_join_error(gs, m, GERR_REBALANCE_IN_PROGRESS);
    m->join_w = w;
    w->m = m;
    w->parked = true;
    set_awaiting(m, true);
}

static struct gmember *member_new(struct group *g, char *id, const struct gjoin_req *rq)
{
    struct gmember *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->g = g;
    m->id = id;
    m->instance_id = str_dup(rq->instance_id);
    m->client_id = rq->client_id.len >= 0 ? str_dup(rq->client_id) : strdup("");
    m->client_host = strdup(rq->client_host ? rq->client_host : "");
    ev_timer_init(&m->session, on_session, m);
    if (!m->client_id || !m->client_host || (rq->instance_id.len >= 0 && !m->instance_id) ||
        member_update(m, rq) < 0) {
        m->id = NULL;
        member_free(g->gs, m);
        return NULL;
    }
    return m;
}

/* Kafka's addMemberAndRebalance; takes ownership of id. Returns 1 (parked) or 0. */
static int add_member(struct groups *gs, struct group *g, char *id, const struct gjoin_req *rq,
                      struct gwaiter *w)
{
    struct gmember *m = member_new(g, id, rq);
    if (!m) {
        free(id);
        join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, "");
        return 0;
    }
    if (!g->nmembers) {
        char *pt = str_dup(rq->protocol_type);
        free(g->protocol_type);
        g->protocol_type = pt;
    }
    m->prev = g->tail;
    if (g->tail)
        g->tail->next = m;
    else
        g->head = m;
    g->tail = m;
    g->nmembers++;
    if (!g->leader)
        set_str(&g->leader, m->id);
    if (g->state == GS_PREPARING && g->initial_delay)
        g->new_member_added = true;
    park_join(gs, m, w);
    member_touch(gs, m);
    log_info("group %s: member %s (client %s, %s) joins", g->id, m->id, m->client_id,
             m->client_host);
    maybe_prepare_rebalance(gs, g, "a new member joined");
    try_complete_join(gs, g);
    return w->m ? 1 : 0;
}

/* Kafka's updateMemberAndRebalance for a known member. */
static int update_member(struct groups *gs, struct group *g, struct gmember *m,
                         const struct gjoin_req *rq, struct gwaiter *w, const char *reason)
{
    if (member_update(m, rq) < 0) {
        join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, m->id);
        return 0;
    }
    park_join(gs, m, w);
    maybe_prepare_rebalance(gs, g, reason);
    try_complete_join(gs, g);
    return w->m ? 1 : 0;
}

/* KIP-345: a known group.instance.id rejoins with an empty member id. The old member id
 * is fenced and the member carries on under new_id. In a Stable group a member that
 * brings the same protocols and metadata gets the current assignment back without a
 * rebalance (Kafka only compares the selected protocol; a changed subscription would
 * then keep a stale assignment, so this also compares the metadata). */
static int static_rejoin(struct groups *gs, struct group *g, struct gmember *m, char *new_id,
                         const struct gjoin_req *rq, struct gwaiter *w)
{
    char *old_leader = g->leader ? strdup(g->leader) : NULL;
    answer_join_error(gs, m, GERR_FENCED_INSTANCE_ID);
    answer_sync(gs, m, GERR_FENCED_INSTANCE_ID);
    log_info("group %s: static member %s rejoins as %s", g->id, m->instance_id, new_id);
    if (is_leader(g, m))
        set_str(&g->leader, new_id);
    free(m->id);
    m->id = new_id;
    char *cid = rq->client_id.len >= 0 ? str_dup(rq->client_id) : NULL;
    if (cid) {
        free(m->client_id);
        m->client_id = cid;
    }
    set_str(&m->client_host, rq->client_host ? rq->client_host : "");
    int rc;
    if (g->state == GS_STABLE) {
        bool same = protocols_equal(m, rq);
        struct gproto *saved = m->protos;
        int nsaved = m->nprotos;
        m->protos = NULL;
        m->nprotos = 0;
        if (member_update(m, rq) < 0) {
            m->protos = saved;
            m->nprotos = nsaved;
            join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, "");
            rc = 0;
            goto out;
        }
        for (int i = 0; i < nsaved; i++) {
            free(saved[i].name);
            free(saved[i].meta);
        }
        free(saved);
        const char *sel = select_protocol(g);
        if (same && sel && g->protocol_name && !strcmp(sel, g->protocol_name)) {
            struct gjoin_result r = generation_view(g, m);
            r.with_members = false;
            r.leader = old_leader ? old_leader : ""; /* so it does not think it leads */
            w->m = NULL;
            gs->ops->join_done(w, &r);
            member_touch(gs, m);
            rc = 0;
            goto out;
        }
        park_join(gs, m, w);
        prepare_rebalance(gs, g, "a static member rejoined with other protocols or metadata");
        rc = w->m ? 1 : 0;
        goto out;
    }
    /* PreparingRebalance waits for it as usual; CompletingRebalance starts over, since
     * the leader may be assigning to the old member id */
    rc = update_member(gs, g, m, rq, w, "a static member rejoined during assignment");
out:
    free(old_leader);
    return rc;
}

static void on_pending_timer(struct ev_loop *l, void *arg);

/* KIP-394: hands out a member id the client must join with. */
static void add_pending(struct groups *gs, struct group *g, char *id, int32_t session_ms,
                        struct gwaiter *w)
{
    struct gpending *p = calloc(1, sizeof *p);
    if (!p) {
        free(id);
        join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, "");
        return;
    }
    p->g = g;
    p->id = id;
    ev_timer_init(&p->timer, on_pending_timer, p);
    ev_timer_start(gs->b->loop, &p->timer, (int64_t)session_ms * 1000);
    p->next = g->pending;
    g->pending = p;
    g->npending++;
    join_error_w(gs, w, GERR_MEMBER_ID_REQUIRED, id);
}

/* Takes the pending id out of g; returns it (owned by the caller) or NULL. */
static char *take_pending(struct groups *gs, struct group *g, kc_str id)
{
    for (struct gpending **pp = &g->pending; *pp; pp = &(*pp)->next) {
        struct gpending *p = *pp;
        if (!str_is(id, p->id))
            continue;
        *pp = p->next;
        g->npending--;
        char *s = p->id;
        p->id = NULL;
        pending_free(gs, p);
        return s;
    }
    return NULL;
}

static void on_pending_timer(struct ev_loop *l, void *arg)
{
    struct gpending *p = arg;
    struct group *g = p->g;
    struct groups *gs = g->gs;
    kc_str id = {p->id, (int32_t)strlen(p->id)};
    free(take_pending(gs, g, id));
    if (g->state == GS_PREPARING)
        try_complete_join(gs, g);
    else
        group_drop_if_unused(gs, g);
}

/* Checks what can be checked before the group is looked at. */
static int16_t join_precheck(struct groups *gs, const struct gjoin_req *rq)
{
    const struct config *cfg = &gs->b->cfg;
    size_t meta = 0;
    if (rq->group_id.len <= 0 || rq->group_id.len > GROUP_ID_MAX)
        return GERR_INVALID_GROUP_ID;
    if (rq->session_ms < cfg->group_min_session_timeout_ms ||
        rq->session_ms > cfg->group_max_session_timeout_ms)
        return GERR_INVALID_SESSION_TIMEOUT;
    for (int i = 0; i < rq->nprotos; i++) {
        meta += rq->protos[i].meta.len > 0 ? (size_t)rq->protos[i].meta.len : 0;
        if (rq->protos[i].name.len < 0 || rq->protos[i].name.len > GROUP_STR_MAX)
            return GERR_INVALID_REQUEST;
    }
    if (rq->nprotos > GROUP_MAX_PROTOCOLS || meta > GROUP_MEMBER_META_MAX ||
        rq->member_id.len > GROUP_STR_MAX || rq->instance_id.len > GROUP_STR_MAX ||
        rq->protocol_type.len > GROUP_STR_MAX) {
        log_warn("group %.*s: JoinGroup from client %.*s refused: %d protocols with %zu bytes "
                 "of metadata (limits %d and %u)",
                 rq->group_id.len, rq->group_id.p, rq->client_id.len > 0 ? rq->client_id.len : 0,
                 rq->client_id.p ? rq->client_id.p : "", rq->nprotos, meta, GROUP_MAX_PROTOCOLS,
                 GROUP_MEMBER_META_MAX);
        return GERR_INVALID_REQUEST;
    }
    return 0;
}

static int join_unknown(struct groups *gs, struct group *g, const struct gjoin_req *rq,
                        struct gwaiter *w)
{
    if (g->nmembers + g->npending >= gs->b->cfg.group_max_size) {
        join_error_w(gs, w, GERR_GROUP_MAX_SIZE_REACHED, "");
        return 0;
    }
    char *id = new_member_id(rq->client_id);
    if (!id) {
        join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, "");
        return 0;
    }
    if (rq->instance_id.len >= 0) {
        struct gmember *m = member_by_instance(g, rq->instance_id);
        if (m)
            return static_rejoin(gs, g, m, id, rq, w);
        return add_member(gs, g, id, rq, w);
    }
    if (rq->require_known_id) {
        add_pending(gs, g, id, rq->session_ms, w);
        return 0;
    }
    return add_member(gs, g, id, rq, w);
}

static int join_known(struct groups *gs, struct group *g, const struct gjoin_req *rq,
                      struct gwaiter *w)
{
    if (is_fenced(g, rq->member_id, rq->instance_id)) {
        join_error_w(gs, w, GERR_FENCED_INSTANCE_ID, "");
        return 0;
    }
    struct gmember *m = member_find(g, rq->member_id);
    if (!m && rq->instance_id.len < 0) {
        char *id = take_pending(gs, g, rq->member_id);
        if (id)
            return add_member(gs, g, id, rq, w);
    }
    if (!m || (rq->instance_id.len >= 0 && !member_by_instance(g, rq->instance_id))) {
        join_error_w(gs, w, GERR_UNKNOWN_MEMBER_ID, "");
        return 0;
    }
    switch (g->state) {
    case GS_PREPARING:
        return update_member(gs, g, m, rq, w, "a member rejoined");
    case GS_COMPLETING:
        if (protocols_equal(m, rq)) { /* it missed the join response: send it again */
            struct gjoin_result r = generation_view(g, m);
            w->m = NULL;
            gs->ops->join_done(w, &r);
            return 0;
        }
        return update_member(gs, g, m, rq, w, "a member changed its protocols");
    case GS_STABLE:
        if (is_leader(g, m) || !protocols_equal(m, rq))
            return update_member(gs, g, m, rq, w,
                                 is_leader(g, m) ? "the leader rejoined"
                                                 : "a member changed its protocols");
        {
            struct gjoin_result r = generation_view(g, m);
            r.with_members = false;
            w->m = NULL;
            gs->ops->join_done(w, &r);
            member_touch(gs, m);
        }
        return 0;
    default:
        join_error_w(gs, w, GERR_UNKNOWN_MEMBER_ID, "");
        return 0;
    }
}

int group_join(struct groups *gs, const struct gjoin_req *rq, struct gwaiter *w)
{
    w->parked = false;
    w->m = NULL;
    int16_t err = join_precheck(gs, rq);
    if (!err && gs->b->draining)
        err = GERR_COORDINATOR_NOT_AVAILABLE;
    if (err) {
        join_error_w(gs, w, err, "");
        return 0;
    }
    struct group *g = group_find(gs, rq->group_id.p, (size_t)rq->group_id.len);
    bool unknown = rq->member_id.len <= 0;
    if (!g && !unknown) {
        join_error_w(gs, w, GERR_UNKNOWN_MEMBER_ID, "");
        return 0;
    }
    const struct gmember *self = g && !unknown ? member_find(g, rq->member_id) : NULL;
    if (!g && (rq->protocol_type.len <= 0 || rq->nprotos == 0)) {
        join_error_w(gs, w, GERR_INCONSISTENT_GROUP_PROTOCOL, "");
        return 0;
    }
    if (g && !supports_protocols(g, rq, self)) {
        join_error_w(gs, w, GERR_INCONSISTENT_GROUP_PROTOCOL, "");
        return 0;
    }
    if (!g && !(g = group_get_or_create(gs, rq->group_id.p, (size_t)rq->group_id.len))) {
        join_error_w(gs, w, GERR_COORDINATOR_NOT_AVAILABLE, "");
        return 0;
    }
    int rc = unknown ? join_unknown(gs, g, rq, w) : join_known(gs, g, rq, w);
    group_drop_if_unused(gs, g);
    return rc;
}

/* The leader's SyncGroup: stores every assignment and answers everyone. */
static int16_t set_assignments(struct groups *gs, struct group *g, const struct gsync_req *rq)
{
    for (int i = 0; i < rq->nassign; i++)
        if (rq->assign[i].assignment.len > (int32_t)GROUP_ASSIGNMENT_MAX) {
            log_warn("group %s: assignment of %d bytes refused (limit %u)", g->id,
                     rq->assign[i].assignment.len, GROUP_ASSIGNMENT_MAX);
            return GERR_INVALID_REQUEST;
        }
    for (struct gmember *m = g->head; m; m = m->next) {
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
    }
    for (int i = 0; i < rq->nassign; i++) {
        struct gmember *m = member_find(g, rq->assign[i].member_id);
        kc_bytes a = rq->assign[i].assignment;
        if (!m || a.len <= 0)
            continue;
        free(m->assignment);
        m->assignment = malloc((size_t)a.len);
        if (!m->assignment)
            return GERR_COORDINATOR_NOT_AVAILABLE;
        memcpy(m->assignment, a.p, (size_t)a.len);
        m->assignment_len = a.len;
    }
    set_state(g, GS_STABLE);
    log_info("group %s: stable at generation %d", g->id, g->generation);
    for (struct gmember *m = g->head; m; m = m->next)
        answer_sync(gs, m, 0);
    return 0;
}

static void sync_answer_now(struct groups *gs, struct gwaiter *w, int16_t err,
                            const struct group *g, const struct gmember *m)
{
    w->m = NULL;
    w->parked = false;
    if (err || !m)
        gs->ops->sync_done(w, err, g, NULL, 0);
    else
        gs->ops->sync_done(w, 0, g, m->assignment, m->assignment_len);
}

int group_sync(struct groups *gs, const struct gsync_req *rq, struct gwaiter *w)
{
    struct group *g =
        rq->group_id.len > 0 ? group_find(gs, rq->group_id.p, (size_t)rq->group_id.len) : NULL;
    struct gmember *m = g ? member_find(g, rq->member_id) : NULL;
    int16_t err = 0;
    if (gs->b->draining)
        err = GERR_COORDINATOR_NOT_AVAILABLE;
    else if (rq->group_id.len <= 0)
        err = GERR_INVALID_GROUP_ID;
    else if (!g)
        err = GERR_UNKNOWN_MEMBER_ID;
    else if (is_fenced(g, rq->member_id, rq->instance_id))
        err = GERR_FENCED_INSTANCE_ID;
    else if (!m)
        err = GERR_UNKNOWN_MEMBER_ID;
    else if (rq->generation != g->generation)
        err = GERR_ILLEGAL_GENERATION;
    else if ((rq->protocol_type.len >= 0 && !str_is(rq->protocol_type, g->protocol_type)) ||
             (rq->protocol_name.len >= 0 && !str_is(rq->protocol_name, g->protocol_name)))
        err = GERR_INCONSISTENT_GROUP_PROTOCOL;
    else if (g->state == GS_EMPTY || g->state == GS_DEAD)
        err = GERR_UNKNOWN_MEMBER_ID;
    else if (g->state == GS_PREPARING)
        err = GERR_REBALANCE_IN_PROGRESS;
    if (err) {
        sync_answer_now(gs, w, err, g, NULL);
        return 0;
    }
    member_touch(gs, m);
    if (g->state == GS_STABLE) {
        sync_answer_now(gs, w, 0, g, m);
        return 0;
    }
    /* CompletingRebalance */
    if (m->sync_w && m->sync_w != w)
        answer_sync(gs, m, GERR_REBALANCE_IN_PROGRESS);
    if (!is_leader(g, m)) {
        m->sync_w = w;
        w->m = m;
        w->parked = true;
        return 1;
    }
    err = set_assignments(gs, g, rq);
    if (err) {
        sync_answer_now(gs, w, err, g, NULL);
        return 0;
    }
    sync_answer_now(gs, w, 0, g, m);
    return 0;
}

int16_t group_heartbeat(struct groups *gs, kc_str group_id, int32_t generation, kc_str member_id,
                        kc_str instance_id)
{
    struct group *g = group_id.len > 0 ? group_find(gs, group_id.p, (size_t)group_id.len) : NULL;
    if (group_id.len <= 0)
        return GERR_INVALID_GROUP_ID;
    if (!g)
        return GERR_UNKNOWN_MEMBER_ID;
    if (is_fenced(g, member_id, instance_id))
        return GERR_FENCED_INSTANCE_ID;
    struct gmember *m = member_find(g, member_id);
    if (!m)
        return GERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return GERR_ILLEGAL_GENERATION;
    switch (g->state) {
    case GS_COMPLETING:
    case GS_STABLE:
        member_touch(gs, m);
        return 0;
    case GS_PREPARING:
        member_touch(gs, m);
        return GERR_REBALANCE_IN_PROGRESS;
    default:
        return GERR_UNKNOWN_MEMBER_ID;
    }
}

int16_t group_leave(struct groups *gs, kc_str group_id, kc_str member_id, kc_str instance_id)
{
    struct group *g = group_id.len > 0 ? group_find(gs, group_id.p, (size_t)group_id.len) : NULL;
    if (group_id.len <= 0)
        return GERR_INVALID_GROUP_ID;
    if (!g)
        return GERR_UNKNOWN_MEMBER_ID;
    struct gmember *m;
    if (member_id.len <= 0 && instance_id.len >= 0) {
        m = member_by_instance(g, instance_id);
    } else {
        if (is_fenced(g, member_id, instance_id))
            return GERR_FENCED_INSTANCE_ID;
        m = member_find(g, member_id);
        if (!m) {
            char *id = take_pending(gs, g, member_id);
            if (!id)
                return GERR_UNKNOWN_MEMBER_ID;
            free(id);
            try_complete_join(gs, g);
            group_drop_if_unused(gs, g);
            return 0;
        }
    }
    if (!m)
        return GERR_UNKNOWN_MEMBER_ID;
    remove_member(gs, g, m, "LeaveGroup");
    return 0;
}

int16_t group_commit_check(struct groups *gs, kc_str group_id, int32_t generation, kc_str member_id,
                           kc_str instance_id, struct group **out)
{
    *out = NULL;
    if (group_id.len <= 0 || group_id.len > GROUP_ID_MAX)
        return GERR_INVALID_GROUP_ID;
    struct group *g = group_find(gs, group_id.p, (size_t)group_id.len);
    if (!g) {
        if (generation >= 0)
            return GERR_ILLEGAL_GENERATION; /* a member of a generation that is gone */
        *out = group_get_or_create(gs, group_id.p, (size_t)group_id.len);
        return *out ? 0 : GERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (is_fenced(g, member_id, instance_id))
        return GERR_FENCED_INSTANCE_ID;
    if (generation < 0 && g->state == GS_EMPTY) {
        *out = g; /* a simple consumer: offsets only, no membership */
        return 0;
    }
    struct gmember *m = member_find(g, member_id);
    if (!m)
        return GERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return GERR_ILLEGAL_GENERATION;
    if (g->state == GS_COMPLETING)
        return GERR_REBALANCE_IN_PROGRESS;
    if (g->state != GS_STABLE && g->state != GS_PREPARING)
        return GERR_UNKNOWN_MEMBER_ID;
    member_touch(gs, m); /* a commit counts as a heartbeat */
    *out = g;
    return 0;
}

void groups_release_all(struct groups *gs)
{
    HTAB_FOREACH(&gs->tab, i, n, nx)
        for (struct gmember *m = HTAB_ENTRY(n, struct group, hnode)->head; m; m = m->next) {
            answer_join_error(gs, m, GERR_COORDINATOR_NOT_AVAILABLE);
            answer_sync(gs, m, GERR_COORDINATOR_NOT_AVAILABLE);
        }
}

/* Removes g from memory and the store if nothing keeps it: no members, no pending ids,
 * no offsets. */
void group_drop_if_unused(struct groups *gs, struct group *g)
{
    if (g->state != GS_EMPTY || g->nmembers || g->npending || g->offs.n)
        return;
    if (g->persisted && group_unpersist(gs, g, false) < 0)
        return;
    htab_remove(&gs->tab, &g->hnode);
    group_free(gs, g);
}

int16_t group_delete(struct groups *gs, kc_str group_id)
{
    struct group *g = group_id.len > 0 ? group_find(gs, group_id.p, (size_t)group_id.len) : NULL;
    if (!g)
        return GERR_GROUP_ID_NOT_FOUND;
    if (g->state != GS_EMPTY || g->nmembers)
        return GERR_NON_EMPTY_GROUP;
    while (g->pending) {
        kc_str id = {g->pending->id, (int32_t)strlen(g->pending->id)};
        free(take_pending(gs, g, id));
    }
    if (group_unpersist(gs, g, true) < 0)
        return GERR_COORDINATOR_NOT_AVAILABLE;
    htab_remove(&gs->tab, &g->hnode);
    group_free(gs, g);
    return 0;
}

/* ---- the consumer protocol ---- */

/* Reads a ConsumerProtocolSubscription's topics; calls fn per topic. Returns 0 or -1. */
static int decode_subscription(const uint8_t *p, int32_t len,
                               bool (*fn)(void *, const char *, size_t), void *arg)
{
    kc_reader r;
    kc_reader_init(&r, p, len > 0 ? (size_t)len : 0);
    kc_i16(&r); /* version */
    int32_t n = kc_array(&r, false, 2);
    if (!kc_ok(&r) || n < 0)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        kc_str t = kc_string(&r, false);
        if (!kc_ok(&r) || t.len < 0)
            return -1;
        if (fn(arg, t.p, (size_t)t.len))
            return 0;
    }
    return 0;
}

struct sub_probe {
    const char *topic;
    size_t len;
    bool found;
};

static bool sub_match(void *arg, const char *t, size_t n)
{
    struct sub_probe *sp = arg;
    if (n == sp->len && !memcmp(t, sp->topic, n))
        sp->found = true;
    return sp->found;
}

bool group_subscribed_to(const struct group *g, const char *topic, size_t len)
{
    if (!g->protocol_type || strcmp(g->protocol_type, "consumer") || !g->nmembers)
        return false;
    for (const struct gmember *m = g->head; m; m = m->next) {
        const struct gproto *p = gmember_protocol(m, g->protocol_name);
        if (!p && m->nprotos)
            p = &m->protos[0];
        if (!p)
            continue;
        struct sub_probe sp = {topic, len, false};
        if (decode_subscription(p->meta, p->meta_len, sub_match, &sp) < 0 || sp.found)
            return true;
    }
    return false;
}

int group_decode_assignment(const uint8_t *p, int32_t len, gassign_fn *fn, void *arg)
{
    kc_reader r;
    kc_reader_init(&r, p, len > 0 ? (size_t)len : 0);
    if (len <= 0)
        return 0;
    kc_i16(&r); /* version */
    int32_t n = kc_array(&r, false, 6);
    if (!kc_ok(&r) || n < 0)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        kc_str t = kc_string(&r, false);
        int32_t np = kc_array(&r, false, 4);
        if (!kc_ok(&r) || t.len < 0 || np < 0)
            return -1;
        int32_t *parts = malloc(np ? (size_t)np * sizeof *parts : 1);
        if (!parts)
            return -1;
        for (int32_t j = 0; j < np; j++)
            parts[j] = kc_i32(&r);
        if (kc_ok(&r))
            fn(arg, t.p, (size_t)t.len, parts, np);
        free(parts);
        if (!kc_ok(&r))
            return -1;
    }
    return 0;
}

/* ---- lifecycle ---- */

static void on_sweep(struct ev_loop *l, void *arg)
{
    struct groups *gs = arg;
    int n = groups_expire_offsets(gs, ev_wall_ms());
    if (n)
        log_info("offsets: %d expired (offsets.retention.minutes=%lld)", n,
                 (long long)gs->b->cfg.offsets_retention_minutes);
    ev_timer_start(l, &gs->sweep, gs->b->cfg.offsets_retention_check_ms * 1000);
}

static void on_hook(struct ev_loop *l, void *arg)
{
    struct groups *gs = arg;
    if (gs->b->draining && !gs->released) {
        gs->released = true;
        groups_release_all(gs);
    }
}

struct groups *groups_new(struct broker *b)
{
    struct groups *gs = calloc(1, sizeof *gs);
    if (!gs)
        return NULL;
    gs->b = b;
    gs->ops = &kapi_group_ops;
    ev_timer_init(&gs->sweep, on_sweep, gs);
    if (group_offsets_load(gs) < 0 || ev_hook_add(b->loop, on_hook, gs) < 0) {
        groups_free(gs);
        return NULL;
    }
    ev_timer_start(b->loop, &gs->sweep, b->cfg.offsets_retention_check_ms * 1000);
    return gs;
}

void groups_free(struct groups *gs)
{
    if (!gs)
        return;
    ev_timer_stop(gs->b->loop, &gs->sweep);
    HTAB_FOREACH(&gs->tab, i, n, nx)
        group_free(gs, HTAB_ENTRY(n, struct group, hnode));
    htab_free(&gs->tab);
    free(gs);
}
