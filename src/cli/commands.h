/* The subcommands of `openwfp`; each parses its own options and returns the
 * process exit status. */
#ifndef OPENWFP_CLI_COMMANDS_H
#define OPENWFP_CLI_COMMANDS_H

int owfp_cmd_replay(int argc, char **argv);
int owfp_cmd_proxy(int argc, char **argv);
int owfp_cmd_fuzz(int argc, char **argv);

#endif
