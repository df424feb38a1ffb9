/* ctl_topic.h: the desired state of one broker topic, its create body, and the diff
 * against what the broker reports (partitions grow only, retention and configs are
 * reverted, storage mode is immutable). Shared by Topic and AgentChannel. */
#ifndef CTL_TOPIC_H
#define CTL_TOPIC_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define CTL_TOPIC_NAME_MAX 249

struct ctl_topic_want {
    char name[CTL_TOPIC_NAME_MAX + 1];
    int64_t partitions;
    char mode[16];
    bool has_rms, has_rbytes;
    int64_t rms, rbytes;
    const cJSON *config; /* borrowed object of string values, or NULL */
};

/* True when name is a valid Kafka topic name. */
bool ctl_topic_name_valid(const char *name);
/* Reads a Topic spec (topicName defaults to default_name). Returns 0, or -1 with the
 * reason in err. */
int ctl_topic_want_from_spec(const cJSON *spec, const char *default_name,
                             struct ctl_topic_want *w, char *err, size_t errcap);
/* The POST /v1/topics body; NULL on OOM. */
cJSON *ctl_topic_create_body(const struct ctl_topic_want *w);
/* Compares w with the broker's topic JSON. Returns 0 when in step, 1 with a PATCH body
 * in *patch, or -1 with the reason in err when the broker's state cannot be reached from
 * w (fewer partitions wanted, another storage mode). */
int ctl_topic_diff(const struct ctl_topic_want *w, const cJSON *broker, cJSON **patch,
                   char *err, size_t errcap);

#endif
