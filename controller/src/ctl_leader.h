/* ctl_leader.h: leader election with a coordination.k8s.io/v1 Lease (15 s duration,
 * renewed about every 5 s, holderIdentity = pod name). It runs on its own thread so that
 * slow reconciles can never delay a renewal; the leader flag gates the workers. */
#ifndef CTL_LEADER_H
#define CTL_LEADER_H

#include "ctl_ctrl.h"

#define CTL_LEASE_DURATION_S 15
#define CTL_LEASE_RENEW_MS 5000
#define CTL_LEASE_RETRY_MS 2000
#define CTL_LEASE_DEADLINE_MS 10000 /* a leader that cannot renew this long stops acting */

int ctl_leader_start(struct ctl_ctrl *c, pthread_t *t);
/* Called after stopping is set: joins the thread, which releases the lease. */
void ctl_leader_join(pthread_t t);

#endif
