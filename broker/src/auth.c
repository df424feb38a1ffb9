/* auth.c: the per-request authorization check (auth.h). */
#include "auth.h"

#include "acl.h"
#include "broker.h"
#include "conn.h"
#include "kafka.h"
#include "metrics.h"
#include "share_view.h"
#include "topic.h"

#include <string.h>

static bool check(const struct kreq *req, int8_t res_type, const char *name, size_t name_len,
                  int8_t op, bool count)
{
    const struct broker *b = req->b;
    if (!b->acls || !b->authorize)
        return true;
    if (acl_allowed(b->acls, req->conn->principal, req->conn->peer_ip, res_type, name, name_len,
                    op))
        return true;
    if (count)
        metrics_denied(b->metrics);
    return false;
}

bool auth_allowed(const struct kreq *req, int8_t res_type, const char *name, size_t name_len,
                  int8_t op)
{
    return check(req, res_type, name, name_len, op, true);
}

bool auth_visible(const struct kreq *req, int8_t res_type, const char *name, size_t name_len,
                  int8_t op)
{
    return check(req, res_type, name, name_len, op, false);
}

bool auth_topic_read(const struct kreq *req, const char *name, size_t len)
{
    if (!auth_allowed(req, ACL_RES_TOPIC, name, len, ACL_OP_READ))
        return false;
    struct broker *b = req->b;
    if (!b->acls || !b->authorize || acls_is_super(b->acls, req->conn->principal))
        return true;
    if (topic_find(b->topics, name, len))
        return true; /* a real topic (a view never shares a topic's name): no lookup */
    struct sview *v = share_view_find(b, name, len);
    if (!v)
        return true;
    uint8_t real[16]; /* a view's id is its source's with the top bit flipped */
    memcpy(real, share_view_id(v), sizeof real);
    real[0] ^= 0x80;
    const struct topic *t = topic_find_id(b->topics, real);
    return t && auth_allowed(req, ACL_RES_TOPIC, t->name, strlen(t->name), ACL_OP_READ);
}
