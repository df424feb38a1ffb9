/* test_hash.c: struct htab (hash.c), the intrusive table behind the group, share-group
 * and quota registries: lookups on an empty table, growth from nothing past several
 * doublings, hashes that collide fully or only in their bucket, removal of chain heads,
 * middles and tails, and removal while walking with HTAB_FOREACH. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "hash.h"

enum { N = 1000 };

/* The node is not the first member, so HTAB_ENTRY has an offset to undo. */
struct item {
    int key;
    struct hnode node;
    bool in;
    int seen;
};

static uint64_t key_hash(int key)
{
    return hash_bytes(&key, sizeof key);
}

static struct item *find(const struct htab *t, int key)
{
    for (struct hnode *n = htab_first(t, key_hash(key)); n; n = htab_next(n)) {
        struct item *it = HTAB_ENTRY(n, struct item, node);
        if (it->key == key)
            return it;
    }
    return NULL;
}

/* How many nodes htab_first/htab_next give for h. */
static int count_hash(const struct htab *t, uint64_t h)
{
    int c = 0;
    for (struct hnode *n = htab_first(t, h); n; n = htab_next(n)) {
        assert_int_equal(n->hash, h);
        c++;
    }
    return c;
}

/* Checks that every node of t is walked once, that items[] marked in are exactly those,
 * and that n agrees. */
static void check_walk(struct htab *t, struct item *items, int nitems)
{
    size_t walked = 0;
    for (int i = 0; i < nitems; i++)
        items[i].seen = 0;
    HTAB_FOREACH(t, b, n, nx) {
        HTAB_ENTRY(n, struct item, node)->seen++;
        walked++;
    }
    assert_int_equal(walked, t->n);
    for (int i = 0; i < nitems; i++)
        assert_int_equal(items[i].seen, items[i].in ? 1 : 0);
}

static void test_empty(void **state)
{
    (void)state;
    struct htab t = {0};
    struct hnode stray = {0};
    assert_null(htab_first(&t, 0));
    assert_null(htab_first(&t, key_hash(1)));
    htab_remove(&t, &stray); /* no buckets: nothing to do */
    int walked = 0;
    HTAB_FOREACH(&t, i, n, nx)
        walked++;
    assert_int_equal(walked, 0);
    htab_free(&t);
    assert_null(t.b);
    assert_int_equal(t.cap, 0);
    assert_int_equal(t.n, 0);
}

static void test_grow_keeps_all(void **state)
{
    (void)state;
    static struct item items[N];
    struct htab t = {0};
    size_t last_cap = 0;
    for (int i = 0; i < N; i++) {
        items[i] = (struct item){.key = i, .in = true};
        assert_int_equal(htab_insert(&t, &items[i].node, key_hash(i)), 0);
        assert_int_equal(t.n, (size_t)i + 1);
        assert_true(t.cap >= t.n);                /* load stays at most 1 */
        assert_int_equal(t.cap & (t.cap - 1), 0); /* a power of two */
        if (t.cap != last_cap) {
            /* just grew: everything inserted so far is still there */
            assert_true(last_cap == 0 ? t.cap == 8 : t.cap == 2 * last_cap);
            for (int j = 0; j <= i; j++)
                assert_ptr_equal(find(&t, j), &items[j]);
            last_cap = t.cap;
        }
    }
    assert_int_equal(t.cap, 1024);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(find(&t, i), &items[i]);
    assert_null(find(&t, N));
    assert_null(find(&t, -1));
    check_walk(&t, items, N);
    htab_free(&t);
}

/* Same-hash nodes are told apart by key; same-bucket nodes of another hash are skipped. */
static void test_collisions(void **state)
{
    (void)state;
    enum { SAME = 100, BUCKET = 50 };
    static struct item items[SAME + BUCKET];
    struct htab t = {0};
    const uint64_t h = 7;
    for (int i = 0; i < SAME + BUCKET; i++) {
        items[i] = (struct item){.key = i, .in = true};
        /* the low 32 bits pick the bucket, so these all share one chain */
        uint64_t hi = i < SAME ? h : h | (uint64_t)(i + 1) << 32;
        assert_int_equal(htab_insert(&t, &items[i].node, hi), 0);
    }
    assert_int_equal(t.n, SAME + BUCKET);
    assert_int_equal(count_hash(&t, h), SAME);
    for (int i = SAME; i < SAME + BUCKET; i++)
        assert_int_equal(count_hash(&t, items[i].node.hash), 1);
    assert_int_equal(count_hash(&t, h | (uint64_t)1 << 40), 0);
    for (int i = 0; i < SAME; i++) {
        bool found = false;
        for (struct hnode *n = htab_first(&t, h); n; n = htab_next(n))
            found |= HTAB_ENTRY(n, struct item, node) == &items[i];
        assert_true(found);
    }
    check_walk(&t, items, SAME + BUCKET);
    htab_free(&t);
}

/* A chain is built head-first: removing its tail, middle and head leaves the rest. */
static void test_remove_chain_ends(void **state)
{
    (void)state;
    struct item items[4];
    struct htab t = {0};
    for (int i = 0; i < 4; i++) {
        items[i] = (struct item){.key = i, .in = true};
        assert_int_equal(htab_insert(&t, &items[i].node, 42), 0);
    }
    struct item other = {.key = 9};
    htab_remove(&t, &other.node); /* not in the table: left alone */
    assert_int_equal(t.n, 4);

    htab_remove(&t, &items[0].node); /* the tail (first inserted) */
    items[0].in = false;
    assert_int_equal(t.n, 3);
    assert_int_equal(count_hash(&t, 42), 3);
    check_walk(&t, items, 4);

    htab_remove(&t, &items[2].node); /* a middle */
    items[2].in = false;
    htab_remove(&t, &items[3].node); /* the head */
    items[3].in = false;
    assert_int_equal(count_hash(&t, 42), 1);
    assert_ptr_equal(htab_first(&t, 42), &items[1].node);
    assert_null(htab_next(&items[1].node));
    check_walk(&t, items, 4);

    htab_remove(&t, &items[1].node); /* the last node of the chain */
    items[1].in = false;
    assert_int_equal(t.n, 0);
    assert_null(htab_first(&t, 42));
    check_walk(&t, items, 4);

    /* the emptied chain takes nodes again */
    assert_int_equal(htab_insert(&t, &items[1].node, 42), 0);
    assert_ptr_equal(htab_first(&t, 42), &items[1].node);
    htab_free(&t);
}

/* HTAB_FOREACH survives removing the node it stands on, in long and short chains. */
static void test_remove_while_walking(void **state)
{
    (void)state;
    static struct item items[N];
    struct htab t = {0};
    int shared = 0; /* even keys on the shared hash: those stay */
    for (int i = 0; i < N; i++) {
        items[i] = (struct item){.key = i, .in = true};
        /* every third key collides on one hash, the others are spread out */
        uint64_t h = i % 3 == 0 ? 3 : key_hash(i);
        assert_int_equal(htab_insert(&t, &items[i].node, h), 0);
        shared += i % 3 == 0 && i % 2 == 0;
    }
    int visited = 0;
    HTAB_FOREACH(&t, i, n, nx) {
        struct item *it = HTAB_ENTRY(n, struct item, node);
        visited++;
        if (it->key % 2) {
            htab_remove(&t, n);
            it->in = false;
            n->next = NULL; /* what a free would leave behind must not matter */
        }
    }
    assert_int_equal(visited, N);
    assert_int_equal(t.n, N / 2);
    check_walk(&t, items, N);
    assert_int_equal(count_hash(&t, 3), shared);
    for (int i = 0; i < N; i++) {
        if (i % 3)
            assert_ptr_equal(find(&t, i), i % 2 ? NULL : &items[i]);
        bool found = false;
        for (struct hnode *n = htab_first(&t, 3); n; n = htab_next(n))
            found |= HTAB_ENTRY(n, struct item, node)->key == i;
        assert_true(found == (i % 3 == 0 && i % 2 == 0));
    }

    HTAB_FOREACH(&t, i, n, nx) /* now everything */
        htab_remove(&t, n);
    assert_int_equal(t.n, 0);
    for (int i = 0; i < N; i++)
        assert_null(find(&t, i));
    assert_null(htab_first(&t, 3));
    htab_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_grow_keeps_all),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_remove_chain_ends),
        cmocka_unit_test(test_remove_while_walking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
