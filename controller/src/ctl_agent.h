/* ctl_agent.h: what an AgentChannel asks of the broker, exposed for tests (the
 * reconciler itself is declared in ctl_rec.h with the others). */
#ifndef CTL_AGENT_H
#define CTL_AGENT_H

#include <cjson/cJSON.h>

#include "ctl_topic.h"

/* The PUT /v1/principals/{principal} body: {"password" (when not NULL), "acls": [...]}
 * with Read, Write and Describe on each of the n topics (literal) and Read and Describe
 * on the consumer groups prefixed "<principal>.". NULL on OOM. */
cJSON *ctl_agent_principal_body(const char *principal, const char *password,
                                const struct ctl_topic_want *want, int n);

#endif
