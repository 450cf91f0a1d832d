/* The replay's reports: one line per connection and a totals line, as
 * key=value text or JSON Lines. */
#ifndef OPENWFP_REPLAY_REPORT_H
#define OPENWFP_REPLAY_REPORT_H

#include <stdio.h>

#include "replay/replay_conn.h"

void owfp_report_conn(FILE *out, bool json, const struct owfp_rconn *rc);
void owfp_report_totals(FILE *out, bool json, const struct owfp_replay *r);

#endif
