// Subcommand registry: each cli/cmd_*.cc registers itself with a static HPL_COMMAND.
#pragma once

#include <string>
#include <vector>

namespace hpl::cli {

// argv excludes "hpl" and the subcommand name. Returns the process exit code.
using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;
  CommandFn fn;
};

std::vector<Command>& commands();

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn fn) {
    commands().push_back({name, summary, fn});
  }
};

#define HPL_COMMAND(name, summary, fn) \
  static ::hpl::cli::CommandRegistrar hpl_command_registrar_##fn(name, summary, fn)

}  // namespace hpl::cli
