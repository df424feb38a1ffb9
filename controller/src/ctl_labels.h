/* ctl_labels.h: Kubernetes label selectors: the string form ("a=b,c!=d,e in (x,y),
 * f notin (z),g,!h") and the LabelSelector object form (matchLabels, matchExpressions),
 * and matching them against an object's labels. */
#ifndef CTL_LABELS_H
#define CTL_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#define CTL_SEL_MAX_REQS 32   /* requirements in one selector */
#define CTL_SEL_MAX_VALUES 64 /* values in one in/notin set */
#define CTL_SEL_MAX_LEN 4096  /* the string form's length */

enum ctl_sel_op { CTL_SEL_EQ, CTL_SEL_NE, CTL_SEL_IN, CTL_SEL_NOTIN, CTL_SEL_EXISTS,
                  CTL_SEL_NOTEXISTS };

struct ctl_sel_req {
    enum ctl_sel_op op;
    char *key;
    char **values;
    int nvalues;
};

struct ctl_selector {
    struct ctl_sel_req reqs[CTL_SEL_MAX_REQS];
    int n; /* 0 matches everything */
};

/* Parses the string form. Returns 0, or -1 with a message in err. */
int ctl_selector_parse(struct ctl_selector *sel, const char *s, size_t len, char *err,
                       size_t errcap);
/* Parses a LabelSelector object, or a JSON string holding the string form. Returns 0, or
 * -1 with a message in err. */
int ctl_selector_from_json(struct ctl_selector *sel, const cJSON *j, char *err, size_t errcap);
/* True when labels (an object of strings, or NULL) satisfy every requirement. */
bool ctl_selector_matches(const struct ctl_selector *sel, const cJSON *labels);
void ctl_selector_free(struct ctl_selector *sel);

#endif
