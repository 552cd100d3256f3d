// hpl pack IN.gguf OUT.gguf [--unpack]: stores the matmul weights of a GGUF model in hpl's
// packed layouts (tools/pack_model.h), so loading maps them with no heap copy and no repack;
// --unpack turns a packed file back into a plain GGUF. Other GGUF readers refuse packed files
// (unknown tensor type ids). One line per (un)packed tensor and a summary go to stderr.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/options.h"
#include "tools/pack_model.h"

namespace hpl::cli {
namespace {

int run_pack(const std::vector<std::string>& args) {
  std::vector<std::string> pos;
  bool unpack = false;
  Options o(
      "usage: hpl pack IN.gguf OUT.gguf [--unpack]\n"
      "  Writes OUT.gguf with the layer matrices and the output (q4_0 q5_0 q8_0 q4_K q5_K q6_K)\n"
      "  in hpl's interleaved 8-row layouts (q4_0x8 ... q6_Kx8): loaded in place from the\n"
      "  mapping instead of repacked into the heap. Only hpl reads the result.");
  o.flag({"--unpack"}, "turn a packed file back into a plain GGUF", unpack).positional(pos);
  if (!o.parse(args)) return 0;
  if (pos.size() != 2)
    o.fail("expected IN.gguf OUT.gguf, got " + std::to_string(pos.size()) + " arguments");
  auto log = [](const std::string& line) { std::fprintf(stderr, "pack: %s\n", line.c_str()); };
  const PackResult r = unpack ? unpack_model(pos[0], pos[1], log) : pack_model(pos[0], pos[1], log);
  std::fprintf(stderr,
               "pack: %s -> %s: %d tensors %s (%.2f MiB), %d copied unchanged; file %.2f MiB -> "
               "%.2f MiB in %.1f s\n",
               pos[0].c_str(), pos[1].c_str(), r.n_changed, unpack ? "unpacked" : "packed",
               r.changed_bytes / 1048576.0, r.n_kept, r.in_file_bytes / 1048576.0,
               r.out_file_bytes / 1048576.0, r.seconds);
  return 0;
}

}  // namespace

HPL_COMMAND("pack", "store a model's weights pre-packed for mapping in place (or --unpack)",
            run_pack);

}  // namespace hpl::cli
