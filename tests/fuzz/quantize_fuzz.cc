// libFuzzer target for `hpl quantize` on corrupt inputs (quantize_model): any input file
// either quantizes or throws (GgufError / std::runtime_error), never crashes or leaks, and a
// failure leaves neither the output nor its temporary file. What quantizes reopens as a GGUF
// with the same tensors in the same order.
// The first input byte picks the mix; the rest is the GGUF file. Seeds: small GGUFs (the
// gguf fuzzer's synthetic ones and tests/data models under 2 MB).
// Built by tests/fuzz/run-fuzz.sh quantize.
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tools/quantize_model.h"

namespace {

constexpr hpl::QuantMix kMixes[] = {hpl::QuantMix::kQ8_0, hpl::QuantMix::kQ4_0,
                                    hpl::QuantMix::kQ4_K_M, hpl::QuantMix::kQ5_K_M,
                                    hpl::QuantMix::kQ6_K};

std::string temp_dir() {
  const char* d = std::getenv("TMPDIR");
  return d ? d : "/tmp";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string in_path =
      temp_dir() + "/hpl-quantize-fuzz-in." + std::to_string(getpid()) + ".gguf";
  static const std::string out_path =
      temp_dir() + "/hpl-quantize-fuzz-out." + std::to_string(getpid()) + ".gguf";
  {
    std::ofstream f(in_path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
    if (!f) std::abort();
  }
  const hpl::QuantMix mix = kMixes[data[0] % 5];
  hpl::QuantizeOptions opt;
  opt.n_threads = 1 + data[0] / 5 % 2;
  bool ok = true;
  try {
    hpl::quantize_model(in_path, out_path, mix, opt);
  } catch (const std::exception&) {  // GgufError, std::runtime_error (NaN weights, ...)
    ok = false;
  }
  namespace fs = std::filesystem;
  if (!ok) {
    if (fs::exists(out_path) || fs::exists(hpl::GgufWriter::temp_path(out_path))) __builtin_trap();
    return 0;
  }
  {
    const auto in = hpl::GgufFile::open(in_path);
    const auto out = hpl::GgufFile::open(out_path);  // throws (= a finding) when unreadable
    if (in->tensors().size() != out->tensors().size()) __builtin_trap();
    for (size_t i = 0; i < in->tensors().size(); ++i)
      if (in->tensors()[i].name != out->tensors()[i].name) __builtin_trap();
  }
  std::remove(out_path.c_str());
  return 0;
}
