/*
 * Callouts built into the `openwfp` command, written as a Windows callout
 * driver writes them (WDK names only), for runs without a --driver module:
 *   noop          one stream inspection callout that looks at every byte and
 *                 decides nothing (the benchmark's "one no-op callout")
 *   mask=WORD     a stream callout that replaces WORD with asterisks in both
 *                 directions by inline injection, across segment boundaries
 *   block-port=N  a static ALE_FLOW_ESTABLISHED filter blocking connections
 *                 to remote port N
 */
#ifndef OPENWFP_CLI_EXAMPLE_CALLOUTS_H
#define OPENWFP_CLI_EXAMPLE_CALLOUTS_H

/* Registers and adds filters for one "NAME[=VALUE]" example. Returns 0, or
 * -1 after a message on stderr. Call after owfp_engine_create(). */
int owfp_examples_add(const char *spec);
/* Unregisters everything owfp_examples_add() set up. */
void owfp_examples_remove(void);
/* What the examples did, one line on `out` (nothing if none ran). */
void owfp_examples_report(void *out);

#endif
