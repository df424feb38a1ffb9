/* kafka.c: request dispatch. The handler table below is the single source of truth for
 * what the broker serves; ApiVersions is generated from it. Every API advertises min
 * version 0 because librdkafka 2.0 disables features unless v0 is listed; old versions
 * whose formats are not served answer UNSUPPORTED_VERSION when used. */
#include "kafka.h"

#include "broker.h"
#include "conn.h"
#include "log.h"
#include "topic.h"

#include <string.h>

const struct kapi kapi_table[KAPI_MAX_KEY] = {
    [0] = {"Produce", 0, 9, 9, kapi_produce},
    [1] = {"Fetch", 0, 13, 12, kapi_fetch},
    [2] = {"ListOffsets", 0, 6, 6, kapi_list_offsets},
    [3] = {"Metadata", 0, 12, 9, kapi_metadata},
    [8] = {"OffsetCommit", 0, 8, 8, kapi_offset_commit},
    [9] = {"OffsetFetch", 0, 8, 6, kapi_offset_fetch},
    [10] = {"FindCoordinator", 0, 4, 3, kapi_find_coordinator},
    [11] = {"JoinGroup", 0, 9, 6, kapi_join_group},
    [12] = {"Heartbeat", 0, 4, 4, kapi_heartbeat},
    [13] = {"LeaveGroup", 0, 5, 4, kapi_leave_group},
    [14] = {"SyncGroup", 0, 5, 4, kapi_sync_group},
    [15] = {"DescribeGroups", 0, 5, 5, kapi_describe_groups},
    [16] = {"ListGroups", 0, 4, 3, kapi_list_groups},
    [17] = {"SaslHandshake", 0, 1, -1, kapi_sasl_handshake},
    [18] = {"ApiVersions", 0, 3, 3, kapi_api_versions},
    [19] = {"CreateTopics", 0, 7, 5, kapi_create_topics},
    [20] = {"DeleteTopics", 0, 6, 4, kapi_delete_topics},
    [21] = {"DeleteRecords", 0, 2, 2, kapi_delete_records},
    [22] = {"InitProducerId", 0, 4, 2, kapi_init_producer_id},
    [29] = {"DescribeAcls", 0, 3, 2, kapi_describe_acls},
    [30] = {"CreateAcls", 0, 3, 2, kapi_create_acls},
    [31] = {"DeleteAcls", 0, 3, 2, kapi_delete_acls},
    [32] = {"DescribeConfigs", 0, 4, 4, kapi_describe_configs},
    [33] = {"AlterConfigs", 0, 2, 2, kapi_alter_configs},
    [36] = {"SaslAuthenticate", 0, 2, 2, kapi_sasl_authenticate},
    [37] = {"CreatePartitions", 0, 3, 2, kapi_create_partitions},
    [42] = {"DeleteGroups", 0, 2, 2, kapi_delete_groups},
    [44] = {"IncrementalAlterConfigs", 0, 1, 1, kapi_incremental_alter_configs},
    [47] = {"OffsetDelete", 0, 0, -1, kapi_offset_delete},
    [60] = {"DescribeCluster", 0, 1, 0, kapi_describe_cluster},
    [76] = {"ShareGroupHeartbeat", 0, 1, 0, kapi_share_group_heartbeat},
    [77] = {"ShareGroupDescribe", 0, 1, 0, kapi_share_group_describe},
    [78] = {"ShareFetch", 0, 1, 0, kapi_share_fetch},
    [79] = {"ShareAcknowledge", 0, 1, 0, kapi_share_acknowledge},
};

enum { API_VERSIONS_KEY = 18, SASL_HANDSHAKE_KEY = 17, SASL_AUTHENTICATE_KEY = 36 };

void kafka_write_response_header(const struct kreq *req, kc_writer *w)
{
    kc_w_i32(w, req->correlation_id);
    if (req->flexible && req->api_key != API_VERSIONS_KEY)
        kc_w_tags(w, true); /* response header v1 */
}

/* Writes error_code and api_keys[] from the handler table: the one source of what the
 * broker serves. */
static void write_api_keys(kc_writer *w, bool flexible, int16_t err)
{
    int n = 0;
    for (int k = 0; k < KAPI_MAX_KEY; k++)
        n += kapi_table[k].fn != NULL;
    kc_w_i16(w, err);
    kc_w_array(w, flexible, n);
    for (int k = 0; k < KAPI_MAX_KEY; k++) {
        if (!kapi_table[k].fn)
            continue;
        kc_w_i16(w, (int16_t)k);
        kc_w_i16(w, kapi_table[k].min);
        kc_w_i16(w, kapi_table[k].max);
        kc_w_tags(w, flexible);
    }
}

int kapi_api_versions(struct kreq *req, kc_writer *w)
{
    if (req->api_version >= 3) {
        kc_string(&req->r, true); /* client_software_name */
        kc_string(&req->r, true); /* client_software_version */
        kc_skip_tags(&req->r, true);
    }
    if (!kc_ok(&req->r))
        return KAPI_EPARSE;
    write_api_keys(w, req->flexible, KERR_NONE);
    if (req->api_version >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_tags(w, req->flexible);
    return KAPI_DONE;
}

static void log_bad(const struct conn *c, const struct kreq *req, const char *why)
{
    log_warn("%s: %s (api %d v%d, correlation id %d); closing", c->peer, why, req->api_key,
             req->api_version, req->correlation_id);
}

int kafka_handle(struct broker *b, struct conn *c, struct kslot *slot, uint8_t *frame,
                 size_t len)
{
    struct kreq req = {.b = b, .conn = c, .slot = slot, .frame = frame, .frame_len = len};
    kc_reader_init(&req.r, frame, len);
    req.api_key = kc_i16(&req.r);
    req.api_version = kc_i16(&req.r);
    req.correlation_id = kc_i32(&req.r);
    req.client_id = kc_string(&req.r, false);
    slot->api_key = req.api_key;
    if (!kc_ok(&req.r)) {
        log_bad(c, &req, "malformed request header");
        return KAPI_EPARSE;
    }
    const struct kapi *api =
        req.api_key >= 0 && req.api_key < KAPI_MAX_KEY ? &kapi_table[req.api_key] : NULL;
    if (!api || !api->fn) {
        log_bad(c, &req, "unknown api key");
        return KAPI_EPARSE;
    }
    if (c->auth_pending && req.api_key != API_VERSIONS_KEY &&
        req.api_key != SASL_HANDSHAKE_KEY && req.api_key != SASL_AUTHENTICATE_KEY) {
        log_bad(c, &req, "request before SASL authentication");
        return KAPI_EPARSE;
    }
    kc_writer *w = &slot->w;
    kc_w_i32(w, 0); /* size, patched when the slot completes */
    if (req.api_version < api->min || req.api_version > api->max) {
        if (req.api_key != API_VERSIONS_KEY) {
            log_bad(c, &req, "unsupported version");
            return KAPI_EPARSE;
        }
        /* KIP-511: answer an unknown ApiVersions version in the v0 format */
        kc_w_i32(w, req.correlation_id);
        write_api_keys(w, false, KERR_UNSUPPORTED_VERSION);
        return KAPI_DONE;
    }
    req.flexible = api->flex_min >= 0 && req.api_version >= api->flex_min;
    kc_skip_tags(&req.r, req.flexible); /* request header v2 */
    kafka_write_response_header(&req, w);
    int rc = api->fn(&req, w);
    if (rc == KAPI_EPARSE)
        log_bad(c, &req, "malformed request body");
    else if (w->err) {
        log_bad(c, &req, "response too large");
        rc = KAPI_EPARSE;
    }
    return rc;
}
