// hpl quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--pack]: requantizes every weight matrix of a
// GGUF model (F32/F16/BF16 or any quantized type we can dequantize) to a mix named like llama.cpp's
// (q8_0, q4_0, q4_k_m, q5_k_m, q6_k); keeps all metadata, sets general.file_type. One progress line
// per tensor and the sizes before/after go to stderr. The output is written to OUT.gguf.tmp and
// renamed at the end; an output that is the input file (by identity, not by spelling), or a
// directory, is refused before any work. --pack then stores the result's matmul weights packed (as
// `hpl pack`, tools/pack_model.h), via OUT.gguf.plain.tmp.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "cli/options.h"
#include "tools/pack_model.h"
#include "tools/quantize_model.h"

namespace hpl::cli {
namespace {

double mib(uint64_t b) {
  return static_cast<double>(b) / (1024.0 * 1024.0);
}

int run_quantize(const std::vector<std::string>& args) {
  std::vector<std::string> pos;
  bool pack = false;
  int n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Options o(
      "usage: hpl quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--pack]\n"
      "  TYPE: q8_0, q4_0 (one type for every matrix), q6_k, q4_k_m, q5_k_m\n"
      "        (_m: q6_K for the output and for attn_v/ffn_down of the first and last\n"
      "        ceil(n/8) layers and every third layer between; q4_K/q5_K elsewhere)\n"
      "  Norms, biases and matrices under 4096 weights stay f32; rows that are not a\n"
      "  multiple of 256 fall back to q5_0 (q4_K, q5_K) or q8_0 (q6_K), and rows not\n"
      "  a multiple of 32 to f16.");
  o.value({"-t", "--threads"}, "N", "threads (default: all cores)",
          [&n_threads](const std::string& opt, const std::string& v) {
            const int64_t n = to_int(opt, v);
            if (n < 1 || n > 256)
              throw std::runtime_error(opt + ": must be an integer in [1, 256], got '" + v + "'");
            n_threads = static_cast<int>(n);
          })
      .flag({"--pack"}, "store the matmul weights packed for hpl (as hpl pack; hpl-only file)",
            pack)
      .positional(pos);
  if (!o.parse(args)) return 0;
  if (pos.size() != 3)
    o.fail("expected IN.gguf OUT.gguf TYPE, got " + std::to_string(pos.size()) + " arguments");
  QuantMix mix;
  if (!parse_quant_mix(pos[2], &mix))
    o.fail("unknown TYPE '" + pos[2] + "' (choose q8_0, q4_0, q4_k_m, q5_k_m or q6_k)");

  std::fprintf(stderr, "quantize: %s -> %s as %s with %d threads\n", pos[0].c_str(), pos[1].c_str(),
               quant_mix_name(mix), n_threads);
  QuantizeOptions opt;
  opt.n_threads = n_threads;
  opt.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  const std::string plain = pack ? pos[1] + ".plain.tmp" : pos[1];
  if (pack) check_output_path(pos[0], pos[1]);
  const QuantizeResult r = quantize_model(pos[0], plain, mix, opt);
  std::fprintf(stderr,
               "quantize: %d tensors quantized (%d with a fallback type), %d copied unchanged\n"
               "quantize: tensor data %.2f MiB -> %.2f MiB\n"
               "quantize: file size %.2f MiB -> %.2f MiB (%.1f%%) in %.1f s\n",
               r.n_quantized, r.n_fallback, r.n_kept, mib(r.in_tensor_bytes),
               mib(r.out_tensor_bytes), mib(r.in_file_bytes), mib(r.out_file_bytes),
               r.in_file_bytes ? 100.0 * static_cast<double>(r.out_file_bytes) /
                                     static_cast<double>(r.in_file_bytes)
                               : 0.0,
               r.seconds);
  if (pack) {
    try {
      const PackResult p = pack_model(plain, pos[1], nullptr);
      std::fprintf(stderr, "quantize: --pack: %d tensors packed (%.2f MiB)\n", p.n_changed,
                   mib(p.changed_bytes));
    } catch (...) {
      std::remove(plain.c_str());
      throw;
    }
    std::remove(plain.c_str());
  }
  return 0;
}

}  // namespace

HPL_COMMAND("quantize", "quantize a GGUF model (q8_0, q4_0, q4_k_m, q5_k_m, q6_k)", run_quantize);

}  // namespace hpl::cli
