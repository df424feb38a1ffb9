/* ctl_yaml.h: a small, bounded reader for the YAML subset kubeconfig files use: block
 * mappings, block sequences (of scalars and of mappings), plain and quoted scalars,
 * comments, and the empty flow collections {} and []. The result is a cJSON tree whose
 * scalars are all strings. Anchors, tags, multi-documents and block scalars are refused
 * with an error rather than misread. */
#ifndef CTL_YAML_H
#define CTL_YAML_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define CTL_YAML_MAX_BYTES (4u << 20) /* refuse larger documents */
#define CTL_YAML_MAX_DEPTH 32         /* nesting limit */

/* Parses text[0..len). Returns the tree (free with cJSON_Delete), or NULL with a message
 * ("line N: ...") in err. */
cJSON *ctl_yaml_parse(const char *text, size_t len, char *err, size_t errcap);

#endif
