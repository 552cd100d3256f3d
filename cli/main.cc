// hpl: run, chat, bench, profile, perplexity, info, tokenize, quantize GGUF models.
// Results go to stdout, logs and errors to stderr.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/options.h"

namespace hpl::cli {
std::vector<Command>& commands() {
  static std::vector<Command> cmds;
  return cmds;
}
}  // namespace hpl::cli

static void usage() {
  auto cmds = hpl::cli::commands();
  std::sort(cmds.begin(), cmds.end(),
            [](const auto& a, const auto& b) { return std::strcmp(a.name, b.name) < 0; });
  std::fprintf(stderr, "usage: hpl COMMAND [options]   (hpl COMMAND --help for its options)\n\n");
  for (const auto& c : cmds) std::fprintf(stderr, "  %-12s %s\n", c.name, c.summary);
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : hpl::cli::commands()) {
    if (std::strcmp(c.name, argv[1]) != 0) continue;
    std::vector<std::string> args(argv + 2, argv + argc);
    try {
      return c.fn(args);
    } catch (const hpl::cli::UsageError& e) {
      std::fprintf(stderr, "hpl %s: error: %s\n", c.name, e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hpl %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "hpl: unknown command '%s'\n\n", argv[1]);
  usage();
  return 2;
}
