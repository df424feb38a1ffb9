/* test_group.c: the group coordinator. The state machine is driven through group.h with
 * callbacks that record every answer, and timers are fired by hand (ub_fire), so each
 * flow (join, sync, heartbeat, leave, KIP-394, KIP-345, fencing, expiry, rebalance
 * timeout) is checked step by step without sleeping. Offsets go through whole
 * OffsetCommit/OffsetFetch frames and a broker restart on the same directory. */
#include "unit_broker.h"

#include "conn.h"

extern const struct group_ops kapi_group_ops;

enum {
    K_OFFSET_COMMIT = 8,
    K_OFFSET_FETCH = 9,
    K_FIND_COORDINATOR = 10,
    K_JOIN = 11,
    K_HEARTBEAT = 12,
    K_LEAVE = 13,
    K_SYNC = 14,
    K_DESCRIBE = 15,
    K_LIST = 16,
    K_DELETE_GROUPS = 42,
    K_OFFSET_DELETE = 47,
};

/* One recorded JoinGroup/SyncGroup answer. */
struct tw {
    struct gwaiter w;
    int calls;
    int16_t err;
    char member_id[256], leader[256], protocol[64];
    int32_t generation;
    bool with_members;
    int nmembers;
    char assignment[64];
    int32_t alen;
};

#define NTW 64

struct gf {
    struct ub u;
    struct conn c;
    struct kslot s;
    struct tw tw[NTW];
    int ntw;
};

static struct tw *tw_of(struct gwaiter *w)
{
    return (struct tw *)((char *)w - offsetof(struct tw, w));
}

static void t_join_done(struct gwaiter *w, const struct gjoin_result *r)
{
    struct tw *t = tw_of(w);
    t->calls++;
    t->err = r->err;
    t->generation = r->generation;
    snprintf(t->member_id, sizeof t->member_id, "%s", r->member_id ? r->member_id : "");
    snprintf(t->leader, sizeof t->leader, "%s", r->leader ? r->leader : "");
    snprintf(t->protocol, sizeof t->protocol, "%s", r->protocol_name ? r->protocol_name : "");
    t->with_members = r->with_members;
    t->nmembers = r->with_members && r->g ? r->g->nmembers : 0;
    w->answered = true;
}

static void t_sync_done(struct gwaiter *w, int16_t err, const struct group *g, const uint8_t *a,
                        int32_t alen)
{
    struct tw *t = tw_of(w);
    t->calls++;
    t->err = err;
    t->alen = alen;
    if (alen > 0 && alen < (int32_t)sizeof t->assignment)
        memcpy(t->assignment, a, (size_t)alen);
    w->answered = true;
}

static const struct group_ops test_ops = {t_join_done, t_sync_done};

static int setup(void **state)
{
    struct gf *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ub_init(&f->u);
    f->u.b.cfg.group_min_session_timeout_ms = 1;
    groups_set_ops(f->u.b.groups, &test_ops);
    f->c.fd = -1;
    f->c.b = &f->u.b;
    snprintf(f->c.peer, sizeof f->c.peer, "10.1.2.3:4567");
    f->s.conn = &f->c;
    kc_writer_init(&f->s.w, 0);
    ub_topic(&f->u, "t", 4);
    ub_topic(&f->u, "u", 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct gf *f = *state;
    if (f->s.cancel)
        f->s.cancel(&f->s);
    kc_writer_free(&f->s.w);
    ub_fini(&f->u);
    free(f);
    return 0;
}

static struct groups *GS(struct gf *f)
{
    return f->u.b.groups;
}

static kc_str S(const char *s)
{
    return s ? (kc_str){s, (int32_t)strlen(s)} : (kc_str){NULL, -1};
}

static struct tw *tw_new(struct gf *f)
{
    assert_true(f->ntw < NTW);
    struct tw *t = &f->tw[f->ntw++];
    memset(t, 0, sizeof *t);
    return t;
}

/* A member's protocols: names separated by ',' each with metadata "<name>-<meta>". */
struct protos {
    struct gproto_in p[4];
    char buf[4][64];
    int n;
};

static void protos_make(struct protos *ps, const char *names, const char *meta)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", names);
    ps->n = 0;
    for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int i = ps->n++;
        size_t nl = strlen(tok);
        snprintf(ps->buf[i], sizeof ps->buf[i], "%s%c%s", tok, 0, meta);
        ps->p[i].name = (kc_str){ps->buf[i], (int32_t)nl};
        ps->p[i].meta = (kc_bytes){(const uint8_t *)ps->buf[i] + nl + 1, (int32_t)strlen(meta)};
    }
}

/* JoinGroup through the state machine. Returns the recorder; parked when calls == 0. */
static struct tw *join_full(struct gf *f, const char *group, const char *member,
                            const char *instance, const char *names, const char *meta, bool v4)
{
    struct protos ps;
    protos_make(&ps, names, meta);
    struct gjoin_req rq = {
        .group_id = S(group),
        .member_id = S(member ? member : ""),
        .instance_id = S(instance),
        .client_id = S("cli"),
        .protocol_type = S("consumer"),
        .client_host = "10.0.0.1",
        .session_ms = 10000,
        .rebalance_ms = 30000,
        .require_known_id = v4,
        .protos = ps.p,
        .nprotos = ps.n,
    };
    struct tw *t = tw_new(f);
    t->w.in_call = true;
    int rc = group_join(GS(f), &rq, &t->w);
    t->w.in_call = false;
    assert_int_equal(rc, t->calls ? 0 : 1);
    return t;
}

static struct tw *join(struct gf *f, const char *group, const char *member)
{
    return join_full(f, group, member, NULL, "range", "m", false);
}

static struct tw *sync_call(struct gf *f, const char *group, const char *member, int32_t gen,
                            const char *instance, int nassign, const char **ids,
                            const char **assignments)
{
    struct gassign_in as[8];
    for (int i = 0; i < nassign; i++) {
        as[i].member_id = S(ids[i]);
        as[i].assignment =
            (kc_bytes){(const uint8_t *)assignments[i], (int32_t)strlen(assignments[i])};
    }
    struct gsync_req rq = {
        .group_id = S(group),
        .member_id = S(member),
        .instance_id = S(instance),
        .protocol_type = S(NULL),
        .protocol_name = S(NULL),
        .generation = gen,
        .assign = as,
        .nassign = nassign,
    };
    struct tw *t = tw_new(f);
    t->w.in_call = true;
    int rc = group_sync(GS(f), &rq, &t->w);
    t->w.in_call = false;
    assert_int_equal(rc, t->calls ? 0 : 1);
    return t;
}

static struct group *G(struct gf *f, const char *id)
{
    return group_find(GS(f), id, strlen(id));
}

/* Fires the group's join timer until the join completes (the initial delay may be
 * extended once per wave of new members). */
static void settle(struct gf *f, struct group *g)
{
    for (int i = 0; i < 10 && g->state == GS_PREPARING; i++)
        assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_not_equal(g->state, GS_PREPARING);
}

static int16_t hb(struct gf *f, const char *group, int32_t gen, const char *member,
                  const char *instance)
{
    return group_heartbeat(GS(f), S(group), gen, S(member), S(instance));
}

/* Brings a one-member group to Stable; returns the member id in out. */
static void one_stable(struct gf *f, const char *group, char *out, size_t cap)
{
    struct tw *j = join(f, group, NULL);
    assert_int_equal(j->calls, 0); /* waits out the initial delay */
    assert_int_equal(G(f, group)->state, GS_PREPARING);
    assert_true(ub_fire(&f->u, &G(f, group)->rebalance));
    assert_int_equal(j->calls, 1);
    assert_int_equal(j->err, 0);
    const char *ids[] = {j->member_id};
    const char *as[] = {"A0"};
    struct tw *s = sync_call(f, group, j->member_id, j->generation, NULL, 1, ids, as);
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->err, 0);
    assert_int_equal(G(f, group)->state, GS_STABLE);
    snprintf(out, cap, "%s", j->member_id);
}

/* ---- the state machine ---- */

static void test_join_sync_heartbeat_leave(void **state)
{
    struct gf *f = *state;
    struct tw *j = join(f, "g", NULL);
    struct group *g = G(f, "g");
    assert_non_null(g);
    assert_int_equal(j->calls, 0);
    assert_int_equal(g->state, GS_PREPARING);
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(j->calls, 1);
    assert_int_equal(j->err, 0);
    assert_int_equal(j->generation, 1);
    assert_string_equal(j->leader, j->member_id);
    assert_true(j->with_members);
    assert_int_equal(j->nmembers, 1);
    assert_string_equal(j->protocol, "range");
    assert_true(strncmp(j->member_id, "cli-", 4) == 0);
    assert_int_equal(strlen(j->member_id), 4 + 36);
    assert_int_equal(g->state, GS_COMPLETING);
    assert_int_equal(hb(f, "g", 1, j->member_id, NULL), 0); /* fine while assigning */

    const char *ids[] = {j->member_id};
    const char *as[] = {"assign-1"};
    struct tw *s = sync_call(f, "g", j->member_id, 1, NULL, 1, ids, as);
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->err, 0);
    assert_int_equal(s->alen, 8);
    assert_memory_equal(s->assignment, "assign-1", 8);
    assert_int_equal(g->state, GS_STABLE);

    assert_int_equal(hb(f, "g", 1, j->member_id, NULL), 0);
    assert_int_equal(hb(f, "g", 0, j->member_id, NULL), GERR_ILLEGAL_GENERATION);
    assert_int_equal(hb(f, "g", 1, "nobody", NULL), GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(f, "nogroup", 1, j->member_id, NULL), GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(hb(f, "", 1, j->member_id, NULL), GERR_INVALID_GROUP_ID);

    /* a SyncGroup again in Stable returns the assignment at once */
    s = sync_call(f, "g", j->member_id, 1, NULL, 0, NULL, NULL);
    assert_int_equal(s->err, 0);
    assert_int_equal(s->alen, 8);
    s = sync_call(f, "g", j->member_id, 7, NULL, 0, NULL, NULL);
    assert_int_equal(s->err, GERR_ILLEGAL_GENERATION);

    assert_int_equal(group_leave(GS(f), S("g"), S("nobody"), S(NULL)), GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_leave(GS(f), S("g"), S(j->member_id), S(NULL)), 0);
    assert_int_equal(g->state, GS_EMPTY);
    assert_int_equal(g->generation, 2);
    assert_int_equal(g->nmembers, 0);
    assert_int_equal(hb(f, "g", 2, j->member_id, NULL), GERR_UNKNOWN_MEMBER_ID);
}

/* A second member makes the group rebalance; the leader's SyncGroup answers both. */
static void test_two_members(void **state)
{
    struct gf *f = *state;
    char a[256];
    one_stable(f, "g", a, sizeof a);
    struct group *g = G(f, "g");
    uint64_t reb = groups_rebalances(GS(f));

    struct tw *jb = join(f, "g", NULL);
    assert_int_equal(jb->calls, 0);
    assert_int_equal(g->state, GS_PREPARING);
    assert_int_equal(groups_rebalances(GS(f)), reb + 1);
    assert_false(g->initial_delay); /* only an Empty group waits for company */
    assert_int_equal(hb(f, "g", 1, a, NULL), GERR_REBALANCE_IN_PROGRESS);
    /* a commit from the old generation is still allowed while members rejoin */
    struct group *cg;
    assert_int_equal(group_commit_check(GS(f), S("g"), 1, S(a), S(NULL), &cg), 0);

    struct tw *ja = join(f, "g", a); /* the last one in completes the join */
    assert_int_equal(ja->calls, 1);
    assert_int_equal(jb->calls, 1);
    assert_int_equal(ja->generation, 2);
    assert_int_equal(jb->generation, 2);
    assert_string_equal(ja->leader, a);
    assert_string_equal(jb->leader, a);
    assert_true(ja->with_members);
    assert_int_equal(ja->nmembers, 2);
    assert_false(jb->with_members);
    assert_int_equal(g->state, GS_COMPLETING);

    /* commits wait for the assignment; stale ones are refused */
    assert_int_equal(group_commit_check(GS(f), S("g"), 2, S(a), S(NULL), &cg),
                     GERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(group_commit_check(GS(f), S("g"), 1, S(a), S(NULL), &cg),
                     GERR_ILLEGAL_GENERATION);
    assert_int_equal(group_commit_check(GS(f), S("g"), 2, S("x"), S(NULL), &cg),
                     GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(group_commit_check(GS(f), S("g"), -1, S(""), S(NULL), &cg),
                     GERR_UNKNOWN_MEMBER_ID);

    struct tw *sb = sync_call(f, "g", jb->member_id, 2, NULL, 0, NULL, NULL);
    assert_int_equal(sb->calls, 0); /* parked until the leader assigns */
    const char *ids[] = {a, jb->member_id};
    const char *as[] = {"for-a", "for-b"};
    struct tw *sa = sync_call(f, "g", a, 2, NULL, 2, ids, as);
    assert_int_equal(sa->calls, 1);
    assert_int_equal(sb->calls, 1);
    assert_int_equal(sb->err, 0);
    assert_memory_equal(sb->assignment, "for-b", 5);
    assert_memory_equal(sa->assignment, "for-a", 5);
    assert_int_equal(g->state, GS_STABLE);
    assert_int_equal(group_commit_check(GS(f), S("g"), 2, S(a), S(NULL), &cg), 0);
    assert_ptr_equal(cg, g);

    /* a member leaving takes the others through another rebalance */
    assert_int_equal(group_leave(GS(f), S("g"), S(jb->member_id), S(NULL)), 0);
    assert_int_equal(g->state, GS_PREPARING);
    ja = join(f, "g", a);
    assert_int_equal(ja->calls, 1);
    assert_int_equal(ja->generation, 3);
    assert_int_equal(g->nmembers, 1);
}

/* KIP-394: v4+ joins without a member id get one to come back with. */
static void test_member_id_required(void **state)
{
    struct gf *f = *state;
    struct tw *j = join_full(f, "g", NULL, NULL, "range", "m", true);
    assert_int_equal(j->calls, 1);
    assert_int_equal(j->err, GERR_MEMBER_ID_REQUIRED);
    assert_true(strncmp(j->member_id, "cli-", 4) == 0);
    struct group *g = G(f, "g");
    assert_int_equal(g->npending, 1);
    assert_int_equal(g->nmembers, 0);

    struct tw *bad = join_full(f, "g", "cli-made-up", NULL, "range", "m", true);
    assert_int_equal(bad->err, GERR_UNKNOWN_MEMBER_ID);

    char id[256];
    snprintf(id, sizeof id, "%s", j->member_id);
    struct tw *j2 = join_full(f, "g", id, NULL, "range", "m", true);
    assert_int_equal(j2->calls, 0);
    assert_int_equal(g->npending, 0);
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(j2->err, 0);
    assert_string_equal(j2->member_id, id);
    assert_string_equal(j2->leader, id);

    /* a pending id that never comes back expires, and an unused group goes away */
    struct tw *j3 = join_full(f, "h", NULL, NULL, "range", "m", true);
    assert_int_equal(j3->err, GERR_MEMBER_ID_REQUIRED);
    struct group *h = G(f, "h");
    assert_non_null(h);
    assert_true(ub_fire(&f->u, &h->pending->timer));
    assert_null(G(f, "h"));
}

/* Two static members in a stable group. */
static void two_static(struct gf *f, char *a, char *b)
{
    struct tw *ja = join_full(f, "g", NULL, "ia", "range", "m", true);
    struct tw *jb = join_full(f, "g", NULL, "ib", "range", "m", true);
    struct group *g = G(f, "g");
    settle(f, g);
    assert_int_equal(ja->calls, 1);
    assert_int_equal(ja->err, 0);
    assert_int_equal(jb->err, 0);
    strcpy(a, ja->member_id);
    strcpy(b, jb->member_id);
    struct tw *sb = sync_call(f, "g", b, 1, "ib", 0, NULL, NULL);
    const char *ids[] = {a, b};
    const char *as[] = {"AA", "BB"};
    sync_call(f, "g", a, 1, "ia", 2, ids, as);
    assert_int_equal(sb->calls, 1);
    assert_int_equal(g->state, GS_STABLE);
}

/* KIP-345: a static member that restarts gets its assignment back, and the others are
 * not disturbed; its old member id is fenced. */
static void test_static_rejoin(void **state)
{
    struct gf *f = *state;
    char a[256], b[256];
    two_static(f, a, b);
    struct group *g = G(f, "g");
    uint64_t reb = groups_rebalances(GS(f));

    struct tw *jb = join_full(f, "g", NULL, "ib", "range", "m", true);
    assert_int_equal(jb->calls, 1);
    assert_int_equal(jb->err, 0);
    assert_string_not_equal(jb->member_id, b);
    assert_int_equal(jb->generation, 1);
    assert_string_equal(jb->leader, a);
    assert_false(jb->with_members);
    assert_int_equal(g->state, GS_STABLE);
    assert_int_equal(groups_rebalances(GS(f)), reb);
    assert_int_equal(hb(f, "g", 1, a, "ia"), 0); /* the other member carries on */

    assert_int_equal(hb(f, "g", 1, b, "ib"), GERR_FENCED_INSTANCE_ID);
    assert_int_equal(hb(f, "g", 1, b, NULL), GERR_UNKNOWN_MEMBER_ID);
    struct group *cg;
    assert_int_equal(group_commit_check(GS(f), S("g"), 1, S(b), S("ib"), &cg),
                     GERR_FENCED_INSTANCE_ID);
    struct tw *old = sync_call(f, "g", b, 1, "ib", 0, NULL, NULL);
    assert_int_equal(old->err, GERR_FENCED_INSTANCE_ID);

    struct tw *sb = sync_call(f, "g", jb->member_id, 1, "ib", 0, NULL, NULL);
    assert_int_equal(sb->err, 0);
    assert_memory_equal(sb->assignment, "BB", 2);

    /* the leader restarting: it must not think it leads (it would assign for nothing) */
    struct tw *ja = join_full(f, "g", NULL, "ia", "range", "m", true);
    assert_int_equal(ja->err, 0);
    assert_string_equal(ja->leader, a);
    assert_string_not_equal(ja->member_id, a);
    assert_string_equal(g->leader, ja->member_id);
    assert_int_equal(groups_rebalances(GS(f)), reb);

    /* different subscriptions do need a rebalance */
    struct tw *jc = join_full(f, "g", NULL, "ib", "roundrobin,range", "m2", true);
    assert_int_equal(jc->calls, 0);
    assert_int_equal(g->state, GS_PREPARING);
    assert_int_equal(groups_rebalances(GS(f)), reb + 1);

    /* leaving by instance id alone */
    assert_int_equal(group_leave(GS(f), S("g"), S(""), S("ia")), 0);
    assert_int_equal(group_leave(GS(f), S("g"), S(""), S("ia")), GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(jc->calls, 1); /* only ib is left, and it has joined */
    assert_int_equal(jc->err, 0);
}

/* A static member rejoining while the leader assigns starts the rebalance over. */
static void test_static_rejoin_completing(void **state)
{
    struct gf *f = *state;
    struct tw *ja = join_full(f, "g", NULL, "ia", "range", "m", true);
    struct tw *jb = join_full(f, "g", NULL, "ib", "range", "m", true);
    struct group *g = G(f, "g");
    settle(f, g);
    struct tw *sb = sync_call(f, "g", jb->member_id, 1, "ib", 0, NULL, NULL);
    assert_int_equal(sb->calls, 0);
    struct tw *jb2 = join_full(f, "g", NULL, "ib", "range", "m", true);
    assert_int_equal(sb->calls, 1);
    assert_int_equal(sb->err, GERR_FENCED_INSTANCE_ID);
    assert_int_equal(jb2->calls, 0);
    assert_int_equal(g->state, GS_PREPARING);
    struct tw *ja2 = join_full(f, "g", ja->member_id, "ia", "range", "m", true);
    assert_int_equal(ja2->calls, 1);
    assert_int_equal(jb2->calls, 1);
    assert_int_equal(jb2->generation, 2);
}

/* Session timeouts expire members; a parked call keeps its member alive. */
static void test_session_expiry(void **state)
{
    struct gf *f = *state;
    char a[256];
    one_stable(f, "g", a, sizeof a);
    struct group *g = G(f, "g");
    struct tw *jb = join(f, "g", NULL);
    struct gmember *mb = g->tail;
    assert_true(ub_fire(&f->u, &mb->session)); /* b waits in JoinGroup: kept */
    assert_int_equal(g->nmembers, 2);
    assert_true(ev_timer_active(&mb->session));

    /* a stops heartbeating during the rebalance: expiring it completes the join */
    assert_true(ub_fire(&f->u, &g->head->session));
    assert_int_equal(g->nmembers, 1);
    assert_int_equal(jb->calls, 1);
    assert_int_equal(jb->err, 0);
    assert_string_equal(jb->leader, jb->member_id); /* leadership moved */
    assert_int_equal(g->state, GS_COMPLETING);

    /* the new leader never syncs: it expires, and the group empties */
    assert_true(ub_fire(&f->u, &g->head->session));
    assert_int_equal(g->state, GS_EMPTY);
    assert_int_equal(g->nmembers, 0);
    assert_int_equal(hb(f, "g", g->generation, jb->member_id, NULL), GERR_UNKNOWN_MEMBER_ID);
}

/* The rebalance timeout drops members that did not rejoin. */
static void test_rebalance_timeout(void **state)
{
    struct gf *f = *state;
    char a[256];
    one_stable(f, "g", a, sizeof a);
    struct group *g = G(f, "g");
    struct tw *jb = join(f, "g", NULL);
    assert_int_equal(jb->calls, 0);
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(jb->calls, 1);
    assert_int_equal(jb->err, 0);
    assert_int_equal(g->nmembers, 1);
    assert_string_equal(g->head->id, jb->member_id);
    assert_int_equal(hb(f, "g", jb->generation, a, NULL), GERR_UNKNOWN_MEMBER_ID);
}

/* Protocol selection and the checks on what a member brings. */
static void test_protocols(void **state)
{
    struct gf *f = *state;
    struct tw *ja = join_full(f, "g", NULL, NULL, "range,roundrobin", "x", false);
    struct tw *jb = join_full(f, "g", NULL, NULL, "roundrobin", "y", false);
    struct tw *jc = join_full(f, "g", NULL, NULL, "sticky", "z", false);
    assert_int_equal(jc->err, GERR_INCONSISTENT_GROUP_PROTOCOL);
    settle(f, G(f, "g"));
    assert_string_equal(ja->protocol, "roundrobin");
    assert_string_equal(jb->protocol, "roundrobin");

    struct protos ps;
    protos_make(&ps, "roundrobin", "y");
    struct gjoin_req rq = {.group_id = S("g"),
                           .member_id = S(""),
                           .instance_id = S(NULL),
                           .client_id = S("c"),
                           .protocol_type = S("connect"),
                           .session_ms = 10000,
                           .rebalance_ms = 10000,
                           .protos = ps.p,
                           .nprotos = ps.n};
    struct tw *t = tw_new(f);
    group_join(GS(f), &rq, &t->w);
    assert_int_equal(t->err, GERR_INCONSISTENT_GROUP_PROTOCOL);

    /* session timeout bounds */
    rq.protocol_type = S("consumer");
    rq.session_ms = 0;
    t = tw_new(f);
    group_join(GS(f), &rq, &t->w);
    assert_int_equal(t->err, GERR_INVALID_SESSION_TIMEOUT);

    /* oversized metadata is refused, and nothing of it is kept */
    static uint8_t big[GROUP_MEMBER_META_MAX + 1];
    ps.p[0].meta = (kc_bytes){big, (int32_t)sizeof big};
    rq.session_ms = 10000;
    rq.group_id = S("big");
    t = tw_new(f);
    group_join(GS(f), &rq, &t->w);
    assert_int_equal(t->err, GERR_INVALID_REQUEST);
    assert_null(G(f, "big"));

    /* an empty group id, and a member id for a group that does not exist */
    rq.group_id = S("");
    t = tw_new(f);
    group_join(GS(f), &rq, &t->w);
    assert_int_equal(t->err, GERR_INVALID_GROUP_ID);
    t = join(f, "nogroup", "someone");
    assert_int_equal(t->err, GERR_UNKNOWN_MEMBER_ID);
    assert_null(G(f, "nogroup"));
}

/* The initial delay grows while members keep arriving, up to the rebalance timeout. */
static void test_initial_delay(void **state)
{
    struct gf *f = *state;
    struct tw *ja = join(f, "g", NULL);
    struct group *g = G(f, "g");
    assert_true(g->initial_delay);
    struct tw *jb = join(f, "g", NULL);
    assert_true(g->new_member_added);
    assert_true(ub_fire(&f->u, &g->rebalance)); /* extended once */
    assert_int_equal(ja->calls, 0);
    assert_true(ev_timer_active(&g->rebalance));
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(ja->calls, 1);
    assert_int_equal(jb->calls, 1);
    assert_int_equal(g->nmembers, 2);
}

/* A connection closing under a parked JoinGroup: the member stays (Kafka semantics) and
 * the waiter is forgotten. */
static void test_waiter_cancel(void **state)
{
    struct gf *f = *state;
    struct tw *j = join(f, "g", NULL);
    struct group *g = G(f, "g");
    group_waiter_cancel(&j->w);
    assert_null(g->head->join_w);
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(j->calls, 0);
    assert_int_equal(g->state, GS_COMPLETING);
    assert_int_equal(g->nmembers, 1);
}

/* Draining answers every parked call. */
static void test_release_all(void **state)
{
    struct gf *f = *state;
    char a[256];
    one_stable(f, "g", a, sizeof a);
    struct tw *jb = join(f, "g", NULL);
    assert_int_equal(jb->calls, 0);
    groups_release_all(GS(f));
    assert_int_equal(jb->calls, 1);
    assert_int_equal(jb->err, GERR_COORDINATOR_NOT_AVAILABLE);
}

/* ---- the wire ---- */

static int32_t next_corr = 5000;

static void req_begin(kc_writer *w, int16_t key, int16_t ver, bool flex)
{
    kc_writer_init(w, 0);
    kc_w_i16(w, key);
    kc_w_i16(w, ver);
    kc_w_i32(w, next_corr++);
    kc_w_cstr(w, false, "unit");
    kc_w_tags(w, flex);
}

/* Handles req (consumed) as one frame in a buffer of its exact size. When answered,
 * leaves body after the response header. */
static int call(struct gf *f, kc_writer *req, bool flex_hdr, kc_reader *body)
{
    uint8_t *frame = malloc(req->len);
    assert_non_null(frame);
    assert_int_equal(req->err, KC_OK);
    memcpy(frame, req->p, req->len);
    int32_t corr = (int32_t)kc_get_be32(req->p + 4);
    size_t len = req->len;
    kc_writer_free(req);
    if (f->s.cancel)
        f->s.cancel(&f->s);
    kc_writer_reset(&f->s.w);
    f->s.cancel = NULL;
    f->s.owner = NULL;
    int rc = kafka_handle(&f->u.b, &f->c, &f->s, frame, len);
    free(frame);
    kc_reader_init(body, f->s.w.p, f->s.w.len);
    if (rc == KAPI_EPARSE)
        return rc;
    assert_int_equal(kc_i32(body), 0);
    assert_int_equal(kc_i32(body), corr);
    kc_skip_tags(body, flex_hdr);
    assert_true(kc_ok(body));
    return rc;
}

/* OffsetCommit of (topic, partition, offset, metadata) entries; v >= 1. */
struct centry {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *metadata;
};

static int commit(struct gf *f, int16_t v, const char *group, int32_t gen, const char *member,
                  const struct centry *e, int n, int16_t *errs)
{
    bool fx = v >= 8;
    kc_writer w;
    kc_reader r;
    req_begin(&w, K_OFFSET_COMMIT, v, fx);
    kc_w_cstr(&w, fx, group);
    if (v >= 1) {
        kc_w_i32(&w, gen);
        kc_w_cstr(&w, fx, member);
    }
    if (v >= 7)
        kc_w_cstr(&w, fx, NULL);
    if (v >= 2 && v <= 4)
        kc_w_i64(&w, -1);
    kc_w_array(&w, fx, n); /* one topic per entry keeps the builder simple */
    for (int i = 0; i < n; i++) {
        kc_w_cstr(&w, fx, e[i].topic);
        kc_w_array(&w, fx, 1);
        kc_w_i32(&w, e[i].partition);
        kc_w_i64(&w, e[i].offset);
        if (v >= 6)
            kc_w_i32(&w, 7);
        if (v == 1)
            kc_w_i64(&w, 1234);
        kc_w_cstr(&w, fx, e[i].metadata);
        kc_w_tags(&w, fx);
        kc_w_tags(&w, fx);
    }
    kc_w_tags(&w, fx);
    int rc = call(f, &w, fx, &r);
    if (rc == KAPI_EPARSE)
        return rc;
    if (v >= 3)
        assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, fx, 0), n);
    for (int i = 0; i < n; i++) {
        ub_assert_str(kc_string(&r, fx), e[i].topic);
        assert_int_equal(kc_array(&r, fx, 0), 1);
        assert_int_equal(kc_i32(&r), e[i].partition);
        errs[i] = kc_i16(&r);
        kc_skip_tags(&r, fx);
        kc_skip_tags(&r, fx);
    }
    ub_assert_done(&r, fx);
    if (rc == KAPI_DEFER) { /* waits for the fsync; the connection "closes" first */
        assert_non_null(f->s.cancel);
        f->s.cancel(&f->s);
        f->s.cancel = NULL;
    }
    return rc;
}

/* One fetched offset. */
struct fentry {
    char topic[64];
    int32_t partition;
    int64_t offset;
    int32_t epoch;
    char metadata[64];
    int16_t err;
};

/* OffsetFetch for group; topic NULL asks for everything. Returns the entries found. */
static int fetch_offsets(struct gf *f, int16_t v, const char *group, const char *topic,
                         int32_t partition, struct fentry *out, int max)
{
    bool fx = v >= 6;
    kc_writer w;
    kc_reader r;
    req_begin(&w, K_OFFSET_FETCH, v, fx);
    if (v >= 8) {
        kc_w_array(&w, fx, 1);
        kc_w_cstr(&w, fx, group);
    } else {
        kc_w_cstr(&w, fx, group);
    }
    if (topic) {
        kc_w_array(&w, fx, 1);
        kc_w_cstr(&w, fx, topic);
        kc_w_array(&w, fx, 1);
        kc_w_i32(&w, partition);
        kc_w_tags(&w, fx);
    } else {
        kc_w_array(&w, fx, -1);
    }
    if (v >= 8)
        kc_w_tags(&w, fx);
    if (v >= 7)
        kc_w_bool(&w, false);
    kc_w_tags(&w, fx);
    assert_int_equal(call(f, &w, fx, &r), KAPI_DONE);
    if (v >= 3)
        assert_int_equal(kc_i32(&r), 0);
    if (v >= 8) {
        assert_int_equal(kc_array(&r, fx, 0), 1);
        ub_assert_str(kc_string(&r, fx), group);
    }
    int32_t nt = kc_array(&r, fx, 0), n = 0;
    for (int32_t i = 0; i < nt; i++) {
        kc_str t = kc_string(&r, fx);
        int32_t np = kc_array(&r, fx, 0);
        for (int32_t j = 0; j < np; j++) {
            assert_true(n < max);
            struct fentry *e = &out[n++];
            snprintf(e->topic, sizeof e->topic, "%.*s", t.len, t.p);
            e->partition = kc_i32(&r);
            e->offset = kc_i64(&r);
            e->epoch = v >= 5 ? kc_i32(&r) : -1;
            kc_str m = kc_string(&r, fx);
            snprintf(e->metadata, sizeof e->metadata, "%.*s", m.len > 0 ? m.len : 0,
                     m.p ? m.p : "");
            e->err = kc_i16(&r);
            kc_skip_tags(&r, fx);
        }
        kc_skip_tags(&r, fx);
    }
    if (v >= 8) {
        assert_int_equal(kc_i16(&r), 0);
        kc_skip_tags(&r, fx);
    } else if (v >= 2) {
        assert_int_equal(kc_i16(&r), 0);
    }
    ub_assert_done(&r, fx);
    return n;
}

/* Commits from a simple consumer survive a restart; every version reads them back. */
static void test_offsets_persist(void **state)
{
    struct gf *f = *state;
    int16_t errs[4];
    struct centry e[] = {
        {"t", 0, 10, "meta-0"}, {"t", 3, 13, NULL}, {"u", 1, 21, "m"}, {"nope", 0, 1, ""}};
    assert_int_equal(commit(f, 8, "simple", -1, "", e, 4, errs), KAPI_DEFER);
    assert_int_equal(errs[0], 0);
    assert_int_equal(errs[1], 0);
    assert_int_equal(errs[2], 0);
    assert_int_equal(errs[3], KERR_UNKNOWN_TOPIC_OR_PARTITION);
    struct centry e2[] = {{"t", 1, 11, "v2"}, {"t", 9, 1, ""}};
    assert_int_equal(commit(f, 2, "simple", -1, "", e2, 2, errs), KAPI_DEFER);
    assert_int_equal(errs[1], KERR_UNKNOWN_TOPIC_OR_PARTITION);

    ub_restart(&f->u);
    groups_set_ops(f->u.b.groups, &test_ops);
    struct fentry out[8];
    int n = fetch_offsets(f, 8, "simple", NULL, 0, out, 8);
    assert_int_equal(n, 4);
    assert_string_equal(out[0].topic, "t");
    assert_int_equal(out[0].partition, 0);
    assert_int_equal(out[0].offset, 10);
    assert_int_equal(out[0].epoch, 7);
    assert_string_equal(out[0].metadata, "meta-0");
    assert_int_equal(out[1].partition, 1);
    assert_int_equal(out[1].offset, 11);
    assert_int_equal(out[1].epoch, -1);
    assert_int_equal(out[2].partition, 3);
    assert_string_equal(out[2].metadata, ""); /* null metadata is kept as "" */
    assert_string_equal(out[3].topic, "u");
    assert_int_equal(out[3].offset, 21);

    for (int16_t v = 0; v <= 8; v++) {
        n = fetch_offsets(f, v, "simple", "t", 3, out, 8);
        assert_int_equal(n, 1);
        assert_int_equal(out[0].offset, 13);
        n = fetch_offsets(f, v, "simple", "t", 2, out, 8);
        assert_int_equal(n, 1);
        assert_int_equal(out[0].offset, -1);
        assert_int_equal(out[0].err, 0);
        n = fetch_offsets(f, v, "unknown-group", "t", 0, out, 8);
        assert_int_equal(out[0].offset, -1);
    }
    assert_int_equal(fetch_offsets(f, 8, "unknown-group", NULL, 0, out, 8), 0);
    struct group *g = G(f, "simple");
    assert_non_null(g);
    assert_int_equal(g->state, GS_EMPTY);
    assert_string_equal(group_offset(g, "t", 1, 0)->metadata, "meta-0");
}

/* Commit checks: generation and member for a live group, metadata size, v0 and v1. */
static void test_commit_checks(void **state)
{
    struct gf *f = *state;
    char a[256];
    int16_t errs[2];
    one_stable(f, "g", a, sizeof a);
    struct centry e[] = {{"t", 0, 5, ""}};
    assert_int_equal(commit(f, 8, "g", 1, a, e, 1, errs), KAPI_DEFER);
    assert_int_equal(errs[0], 0);
    assert_int_equal(commit(f, 8, "g", 0, a, e, 1, errs), KAPI_DONE);
    assert_int_equal(errs[0], GERR_ILLEGAL_GENERATION);
    assert_int_equal(commit(f, 8, "g", 1, "intruder", e, 1, errs), KAPI_DONE);
    assert_int_equal(errs[0], GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(commit(f, 8, "g", -1, "", e, 1, errs), KAPI_DONE);
    assert_int_equal(errs[0], GERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(commit(f, 1, "other", 3, "x", e, 1, errs), KAPI_DONE);
    assert_int_equal(errs[0], GERR_ILLEGAL_GENERATION); /* a generation that is gone */
    assert_null(G(f, "other"));
    assert_int_equal(group_offset(G(f, "g"), "t", 1, 0)->offset, 5); /* untouched */

    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct centry eb[] = {{"t", 1, 5, big}, {"t", 2, 6, "ok"}};
    assert_int_equal(commit(f, 8, "g", 1, a, eb, 2, errs), KAPI_DEFER);
    assert_int_equal(errs[0], GERR_OFFSET_METADATA_TOO_LARGE);
    assert_int_equal(errs[1], 0);
    assert_null(group_offset(G(f, "g"), "t", 1, 1));

    /* v0: no generation, only for groups without members */
    kc_writer w;
    kc_reader r;
    req_begin(&w, K_OFFSET_COMMIT, 0, false);
    kc_w_cstr(&w, false, "v0group");
    kc_w_array(&w, false, 1);
    kc_w_cstr(&w, false, "u");
    kc_w_array(&w, false, 1);
    kc_w_i32(&w, 0);
    kc_w_i64(&w, 77);
    kc_w_cstr(&w, false, "zero");
    assert_int_equal(call(f, &w, false, &r), KAPI_DEFER);
    f->s.cancel(&f->s);
    f->s.cancel = NULL;
    assert_int_equal(group_offset(G(f, "v0group"), "u", 1, 0)->offset, 77);
}

/* Group records keep empty groups across restarts; DeleteGroups removes them. */
static void test_group_records(void **state)
{
    struct gf *f = *state;
    char a[256];
    one_stable(f, "g", a, sizeof a);
    assert_int_equal(group_leave(GS(f), S("g"), S(a), S(NULL)), 0);
    int16_t errs[1];
    struct centry e[] = {{"t", 0, 5, ""}};
    assert_int_equal(commit(f, 8, "h", -1, "", e, 1, errs), KAPI_DEFER);
    ub_restart(&f->u);
    groups_set_ops(f->u.b.groups, &test_ops);
    struct group *g = G(f, "g");
    assert_non_null(g);
    assert_int_equal(g->state, GS_EMPTY);
    assert_int_equal(g->generation, 2);
    assert_string_equal(g->protocol_type, "consumer");
    assert_non_null(G(f, "h"));
    assert_int_equal(groups_count(GS(f)), 2);

    /* the generation carries on after a restart */
    struct tw *j = join(f, "g", NULL);
    assert_true(ub_fire(&f->u, &g->rebalance));
    assert_int_equal(j->generation, 3);

    assert_int_equal(group_delete(GS(f), S("g")), GERR_NON_EMPTY_GROUP);
    assert_int_equal(group_delete(GS(f), S("nope")), GERR_GROUP_ID_NOT_FOUND);
    assert_int_equal(group_delete(GS(f), S("h")), 0);
    assert_null(G(f, "h"));
    ub_restart(&f->u);
    groups_set_ops(f->u.b.groups, &test_ops);
    assert_null(G(f, "h"));
    assert_non_null(G(f, "g"));
}

/* Offsets of empty groups expire after offsets.retention.minutes; live groups keep them. */
static void test_offset_expiry(void **state)
{
    struct gf *f = *state;
    char a[256];
    int16_t errs[1];
    struct centry e[] = {{"t", 0, 5, ""}};
    assert_int_equal(commit(f, 8, "idle", -1, "", e, 1, errs), KAPI_DEFER);
    one_stable(f, "live", a, sizeof a);
    assert_int_equal(commit(f, 8, "live", 1, a, e, 1, errs), KAPI_DEFER);
    int64_t later = ev_wall_ms() + f->u.b.cfg.offsets_retention_minutes * 60000 + 1000;
    assert_int_equal(groups_expire_offsets(GS(f), ev_wall_ms()), 0);
    assert_int_equal(groups_expire_offsets(GS(f), later), 1);
    assert_null(G(f, "idle"));
    assert_non_null(group_offset(G(f, "live"), "t", 1, 0));
    ub_restart(&f->u);
    groups_set_ops(f->u.b.groups, &test_ops);
    assert_null(G(f, "idle"));
    assert_non_null(group_offset(G(f, "live"), "t", 1, 0));
}

/* Many groups with commits: each group's offsets stay its own. */
static void test_many_groups(void **state)
{
    struct gf *f = *state;
    char name[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "grp-%d", i);
        struct group *g = NULL;
        assert_int_equal(group_commit_check(GS(f), S(name), -1, S(""), S(NULL), &g), 0);
        struct gcommit *c = group_commit_begin(GS(f), g);
        assert_int_equal(group_commit_stage(c, S("t"), i % 4, i, -1, S("")), 0);
        assert_int_equal(group_commit_write(c), 1);
        assert_int_equal(group_commit_apply(c, S("t"), i % 4, i, -1, S("")), 0);
        group_commit_end(c);
    }
    assert_int_equal(groups_count(GS(f)), 10000);
    ub_restart(&f->u);
    groups_set_ops(f->u.b.groups, &test_ops);
    assert_int_equal(groups_count(GS(f)), 10000);
    for (int i = 0; i < 10000; i += 997) {
        snprintf(name, sizeof name, "grp-%d", i);
        struct group *g = G(f, name);
        assert_non_null(g);
        assert_int_equal(g->offs.n, 1);
        assert_int_equal(group_offset(g, "t", 1, i % 4)->offset, i);
    }
}

/* Lag in /metrics: end offset minus committed offset, per group and topic. */
static void test_metrics_lag(void **state)
{
    struct gf *f = *state;
    kc_writer recs;
    kc_writer_init(&recs, 0);
    struct ub_batch spec = ub_plain(5);
    ub_batch_put(&recs, &spec);
    int64_t base;
    char msg[128];
    assert_int_equal(plog_append(f->u.b.topics, ub_part(&f->u, "t", 0), recs.p, recs.len, &base,
                                 msg, sizeof msg),
                     KERR_NONE);
    kc_writer_free(&recs);
    int16_t errs[2];
    struct centry e[] = {{"t", 0, 2, ""}, {"t", 1, 0, ""}};
    assert_int_equal(commit(f, 8, "lagging", -1, "", e, 2, errs), KAPI_DEFER);
    kc_writer w;
    kc_writer_init(&w, 0);
    metrics_render(f->u.b.metrics, &f->u.b, &w);
    kc_w_raw(&w, "", 1);
    assert_int_equal(w.err, 0);
    assert_non_null(strstr((char *)w.p, "\nsluice_groups 1\n"));
    assert_non_null(strstr((char *)w.p, "\nsluice_group_lag{group=\"lagging\",topic=\"t\"} 3\n"));
    kc_writer_free(&w);
}

static void test_find_coordinator(void **state)
{
    struct gf *f = *state;
    kc_writer w;
    kc_reader r;
    for (int16_t v = 0; v <= 3; v++) {
        bool fx = v >= 3;
        req_begin(&w, K_FIND_COORDINATOR, v, fx);
        kc_w_cstr(&w, fx, "g");
        if (v >= 1)
            kc_w_i8(&w, 0);
        kc_w_tags(&w, fx);
        assert_int_equal(call(f, &w, fx, &r), KAPI_DONE);
        if (v >= 1)
            assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_i16(&r), 0);
        if (v >= 1)
            ub_assert_str(kc_string(&r, fx), NULL);
        assert_int_equal(kc_i32(&r), f->u.b.cfg.node_id);
        ub_assert_str(kc_string(&r, fx), "127.0.0.1");
        assert_int_equal(kc_i32(&r), 9092);
        ub_assert_done(&r, fx);
    }
    /* v4: batched keys; transactions have no coordinator here */
    for (int8_t kt = 0; kt <= 1; kt++) {
        req_begin(&w, K_FIND_COORDINATOR, 4, true);
        kc_w_i8(&w, kt);
        kc_w_array(&w, true, 2);
        kc_w_cstr(&w, true, "a");
        kc_w_cstr(&w, true, "b");
        kc_w_tags(&w, true);
        assert_int_equal(call(f, &w, true, &r), KAPI_DONE);
        assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_array(&r, true, 0), 2);
        for (int i = 0; i < 2; i++) {
            ub_assert_str(kc_string(&r, true), i ? "b" : "a");
            assert_int_equal(kc_i32(&r), kt ? -1 : f->u.b.cfg.node_id);
            kc_string(&r, true);
            assert_int_equal(kc_i32(&r), kt ? -1 : 9092);
            assert_int_equal(kc_i16(&r), kt ? GERR_COORDINATOR_NOT_AVAILABLE : 0);
            kc_string(&r, true);
            kc_skip_tags(&r, true);
        }
        ub_assert_done(&r, true);
    }
}

/* JoinGroup and SyncGroup frames: KIP-394 at v4+, everything read to the last byte. */
static void test_join_wire(void **state)
{
    struct gf *f = *state;
    groups_set_ops(GS(f), &kapi_group_ops);
    for (int16_t v = 4; v <= 9; v++) {
        bool fx = v >= 6;
        kc_writer w;
        kc_reader r;
        req_begin(&w, K_JOIN, v, fx);
        kc_w_cstr(&w, fx, "wg");
        kc_w_i32(&w, 10000);
        kc_w_i32(&w, 20000);
        kc_w_cstr(&w, fx, "");
        if (v >= 5)
            kc_w_cstr(&w, fx, NULL);
        kc_w_cstr(&w, fx, "consumer");
        kc_w_array(&w, fx, 1);
        kc_w_cstr(&w, fx, "range");
        kc_w_bytes(&w, fx, "meta", 4);
        kc_w_tags(&w, fx);
        if (v >= 8)
            kc_w_cstr(&w, fx, "why not");
        kc_w_tags(&w, fx);
        assert_int_equal(call(f, &w, fx, &r), KAPI_DONE);
        assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_i16(&r), GERR_MEMBER_ID_REQUIRED);
        assert_int_equal(kc_i32(&r), -1);
        if (v >= 7) {
            ub_assert_str(kc_string(&r, fx), NULL);
            ub_assert_str(kc_string(&r, fx), NULL);
        } else {
            ub_assert_str(kc_string(&r, fx), "");
        }
        ub_assert_str(kc_string(&r, fx), "");
        if (v >= 9)
            assert_false(kc_bool(&r));
        kc_str id = kc_string(&r, fx);
        assert_true(id.len > 5 && !memcmp(id.p, "unit-", 5));
        assert_int_equal(kc_array(&r, fx, 0), 0);
        ub_assert_done(&r, fx);
    }
    /* the v4+ join with the id parks; closing the connection forgets it */
    struct group *g = G(f, "wg");
    assert_int_equal(g->npending, 6);
    char id[128];
    snprintf(id, sizeof id, "%s", g->pending->id);
    kc_writer w;
    kc_reader r;
    req_begin(&w, K_JOIN, 5, false);
    kc_w_cstr(&w, false, "wg");
    kc_w_i32(&w, 10000);
    kc_w_i32(&w, 20000);
    kc_w_cstr(&w, false, id);
    kc_w_cstr(&w, false, NULL);
    kc_w_cstr(&w, false, "consumer");
    kc_w_array(&w, false, 1);
    kc_w_cstr(&w, false, "range");
    kc_w_bytes(&w, false, "meta", 4);
    assert_int_equal(call(f, &w, false, &r), KAPI_DEFER);
    assert_non_null(f->s.cancel);
    assert_int_equal(g->nmembers, 1);
    assert_ptr_equal(g->head->join_w, f->s.owner);
    assert_string_equal(g->head->client_host, "10.1.2.3");
    f->s.cancel(&f->s);
    f->s.cancel = NULL;
    assert_null(g->head->join_w);

    /* Heartbeat for an unknown group, every version */
    for (int16_t v = 0; v <= 4; v++) {
        bool fx = v >= 4;
        req_begin(&w, K_HEARTBEAT, v, fx);
        kc_w_cstr(&w, fx, "no-such-group");
        kc_w_i32(&w, 1);
        kc_w_cstr(&w, fx, "m");
        if (v >= 3)
            kc_w_cstr(&w, fx, NULL);
        kc_w_tags(&w, fx);
        assert_int_equal(call(f, &w, fx, &r), KAPI_DONE);
        if (v >= 1)
            assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_i16(&r), GERR_UNKNOWN_MEMBER_ID);
        ub_assert_done(&r, fx);
    }
}

/* DescribeGroups, ListGroups, DeleteGroups and OffsetDelete over the wire. */
static void test_admin_wire(void **state)
{
    struct gf *f = *state;
    char a[256];
    int16_t errs[1];
    one_stable(f, "live", a, sizeof a);
    struct centry e[] = {{"t", 0, 5, ""}};
    assert_int_equal(commit(f, 8, "idle", -1, "", e, 1, errs), KAPI_DEFER);
    kc_writer w;
    kc_reader r;

    req_begin(&w, K_DESCRIBE, 5, true);
    kc_w_array(&w, true, 2);
    kc_w_cstr(&w, true, "live");
    kc_w_cstr(&w, true, "ghost");
    kc_w_bool(&w, true);
    kc_w_tags(&w, true);
    assert_int_equal(call(f, &w, true, &r), KAPI_DONE);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, true, 0), 2);
    assert_int_equal(kc_i16(&r), 0);
    ub_assert_str(kc_string(&r, true), "live");
    ub_assert_str(kc_string(&r, true), "Stable");
    ub_assert_str(kc_string(&r, true), "consumer");
    ub_assert_str(kc_string(&r, true), "range");
    assert_int_equal(kc_array(&r, true, 0), 1);
    ub_assert_str(kc_string(&r, true), a);
    ub_assert_str(kc_string(&r, true), NULL);
    ub_assert_str(kc_string(&r, true), "cli");
    ub_assert_str(kc_string(&r, true), "/10.0.0.1");
    kc_bytes md = kc_bytes_field(&r, true);
    assert_int_equal(md.len, 1);
    kc_bytes as = kc_bytes_field(&r, true);
    assert_int_equal(as.len, 2);
    kc_skip_tags(&r, true);
    assert_int_equal(kc_i32(&r), INT32_MIN);
    kc_skip_tags(&r, true);
    assert_int_equal(kc_i16(&r), 0);
    ub_assert_str(kc_string(&r, true), "ghost");
    ub_assert_str(kc_string(&r, true), "Dead");
    kc_string(&r, true);
    kc_string(&r, true);
    assert_int_equal(kc_array(&r, true, 0), 0);
    assert_int_equal(kc_i32(&r), INT32_MIN);
    kc_skip_tags(&r, true);
    ub_assert_done(&r, true);

    for (int16_t v = 0; v <= 4; v++) {
        bool fx = v >= 3;
        req_begin(&w, K_LIST, v, fx);
        if (v >= 4) {
            kc_w_array(&w, fx, 1);
            kc_w_cstr(&w, fx, "empty");
        }
        kc_w_tags(&w, fx);
        assert_int_equal(call(f, &w, fx, &r), KAPI_DONE);
        if (v >= 1)
            assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_i16(&r), 0);
        int32_t n = kc_array(&r, fx, 0);
        assert_int_equal(n, v >= 4 ? 1 : 2);
        for (int32_t i = 0; i < n; i++) {
            kc_str id = kc_string(&r, fx);
            if (v >= 4)
                ub_assert_str(id, "idle");
            kc_string(&r, fx);
            if (v >= 4)
                ub_assert_str(kc_string(&r, fx), "Empty");
            kc_skip_tags(&r, fx);
        }
        ub_assert_done(&r, fx);
    }

    /* OffsetDelete: a live consumer group refuses topics it subscribes to. Member "m"
     * metadata is not a valid subscription, so every topic counts as subscribed. */
    req_begin(&w, K_OFFSET_DELETE, 0, false);
    kc_w_cstr(&w, false, "live");
    kc_w_array(&w, false, 1);
    kc_w_cstr(&w, false, "t");
    kc_w_array(&w, false, 1);
    kc_w_i32(&w, 0);
    assert_int_equal(call(f, &w, false, &r), KAPI_DONE);
    assert_int_equal(kc_i16(&r), 0);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, false, 0), 1);
    ub_assert_str(kc_string(&r, false), "t");
    assert_int_equal(kc_array(&r, false, 0), 1);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_i16(&r), GERR_GROUP_SUBSCRIBED_TO_TOPIC);
    ub_assert_done(&r, false);

    req_begin(&w, K_OFFSET_DELETE, 0, false);
    kc_w_cstr(&w, false, "idle");
    kc_w_array(&w, false, 1);
    kc_w_cstr(&w, false, "t");
    kc_w_array(&w, false, 1);
    kc_w_i32(&w, 0);
    assert_int_equal(call(f, &w, false, &r), KAPI_DONE);
    assert_int_equal(kc_i16(&r), 0);
    assert_null(group_offset(G(f, "idle"), "t", 1, 0));

    req_begin(&w, K_DELETE_GROUPS, 2, true);
    kc_w_array(&w, true, 3);
    kc_w_cstr(&w, true, "live");
    kc_w_cstr(&w, true, "idle");
    kc_w_cstr(&w, true, "ghost");
    kc_w_tags(&w, true);
    assert_int_equal(call(f, &w, true, &r), KAPI_DONE);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, true, 0), 3);
    int16_t want[] = {GERR_NON_EMPTY_GROUP, 0, GERR_GROUP_ID_NOT_FOUND};
    for (int i = 0; i < 3; i++) {
        kc_string(&r, true);
        assert_int_equal(kc_i16(&r), want[i]);
        kc_skip_tags(&r, true);
    }
    ub_assert_done(&r, true);
}

/* Every strict prefix of a group request is refused as malformed. */
static void test_truncated(void **state)
{
    struct gf *f = *state;
    kc_writer full;
    req_begin(&full, K_OFFSET_COMMIT, 8, true);
    kc_w_cstr(&full, true, "g");
    kc_w_i32(&full, -1);
    kc_w_cstr(&full, true, "");
    kc_w_cstr(&full, true, NULL);
    kc_w_array(&full, true, 1);
    kc_w_cstr(&full, true, "t");
    kc_w_array(&full, true, 1);
    kc_w_i32(&full, 0);
    kc_w_i64(&full, 1);
    kc_w_i32(&full, -1);
    kc_w_cstr(&full, true, "m");
    kc_w_tags(&full, true);
    kc_w_tags(&full, true);
    kc_w_tags(&full, true);
    int saved = log_min_level;
    log_min_level = LOG_ERROR;
    for (size_t n = 0; n < full.len; n++) {
        kc_writer w;
        kc_writer_init(&w, 0);
        kc_w_raw(&w, full.p, n);
        kc_reader r;
        int rc = call(f, &w, true, &r);
        if (rc != KAPI_EPARSE)
            fail_msg("prefix of %zu of %zu bytes: rc %d", n, full.len, rc);
    }
    log_min_level = saved;
    kc_writer_free(&full);
    assert_null(G(f, "g")); /* nothing was left behind */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_join_sync_heartbeat_leave),
        T(test_two_members),
        T(test_member_id_required),
        T(test_static_rejoin),
        T(test_static_rejoin_completing),
        T(test_session_expiry),
        T(test_rebalance_timeout),
        T(test_protocols),
        T(test_initial_delay),
        T(test_waiter_cancel),
        T(test_release_all),
        T(test_offsets_persist),
        T(test_commit_checks),
        T(test_group_records),
        T(test_offset_expiry),
        T(test_many_groups),
        T(test_metrics_lag),
        T(test_find_coordinator),
        T(test_join_wire),
        T(test_admin_wire),
        T(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
