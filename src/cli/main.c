/* `openwfp`: the command-line front of the engine and its data planes. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static void usage(FILE *out)
{
    fputs("usage: openwfp COMMAND [options]\n"
          "\n"
          "commands:\n"
          "  replay [CAPTURE...]   run callouts over recorded TCP traffic (pcap, pcapng);\n"
          "                        with no capture, the bundled sample and example callouts\n"
          "  proxy                 relay live TCP connections through callouts\n"
          "  fuzz                  fuzz callout drivers (libFuzzer, sanitizers, verifier)\n"
          "\n"
          "`openwfp COMMAND --help` describes a command's options.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "replay") == 0)
        return owfp_cmd_replay(argc - 1, argv + 1);
    if (strcmp(argv[1], "proxy") == 0)
        return owfp_cmd_proxy(argc - 1, argv + 1);
    if (strcmp(argv[1], "fuzz") == 0)
        return owfp_cmd_fuzz(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "openwfp: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
