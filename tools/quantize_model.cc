// GGUF -> GGUF quantization; the type rules are documented in quantize_model.h.
#include "tools/quantize_model.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "kernel/quant.h"
#include "kernel/thread_pool.h"

namespace hpl {
namespace {

constexpr int64_t kChunkElems = int64_t{1} << 22;  // rows quantized per write: ~4M weights

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

// "blk.N.xxx" -> N, else -1.
int64_t layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int64_t n = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) n = n * 10 + (name[i] - '0');
  return i < name.size() && name[i] == '.' ? n : -1;
}

// The 32-element type that replaces a K-quant when rows are not whole 256-blocks.
DType k_fallback(DType t) {
  switch (t) {
    case DType::Q4_K:
    case DType::Q5_K:
      return DType::Q5_0;  // Q5_1 has no quantizer in kernel/; Q5_0 keeps >= the bits of Q4_K
    default:
      return DType::Q8_0;  // Q6_K
  }
}

std::string human(double bytes) {
  char b[32];
  if (bytes >= 1024.0 * 1024 * 1024)
    std::snprintf(b, sizeof b, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  else if (bytes >= 1024.0 * 1024)
    std::snprintf(b, sizeof b, "%.2f MiB", bytes / (1024.0 * 1024));
  else
    std::snprintf(b, sizeof b, "%.1f KiB", bytes / 1024.0);
  return b;
}

std::string shape(const GgufTensor& t) {
  std::string s = "[";
  for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

// True when a and b name the same existing file (same device and inode: catches "./x",
// "d//x", absolute paths, symlinks and hard links). False when either does not exist.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

}  // namespace

// Everything about the output that can be known before the work: it must not be the input
// (nor its temporary file be), and must not be a directory.
void check_output_path(const std::string& in_path, const std::string& out_path) {
  namespace fs = std::filesystem;
  if (same_file(in_path, out_path))
    throw std::runtime_error(out_path + ": is the input file " + in_path +
                             " (the output never overwrites its input)");
  if (same_file(in_path, GgufWriter::temp_path(out_path)))
    throw std::runtime_error(GgufWriter::temp_path(out_path) +
                             ": the output's temporary file is the input file " + in_path);
  std::error_code ec;
  if (fs::is_directory(out_path, ec))
    throw std::runtime_error(out_path + ": is a directory (give the output file's name)");
}

bool parse_quant_mix(std::string_view s, QuantMix* out) {
  std::string l(s);
  for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "q8_0")
    *out = QuantMix::kQ8_0;
  else if (l == "q4_0")
    *out = QuantMix::kQ4_0;
  else if (l == "q4_k_m")
    *out = QuantMix::kQ4_K_M;
  else if (l == "q5_k_m")
    *out = QuantMix::kQ5_K_M;
  else if (l == "q6_k")
    *out = QuantMix::kQ6_K;
  else
    return false;
  return true;
}

const char* quant_mix_name(QuantMix m) {
  switch (m) {
    case QuantMix::kQ8_0:
      return "q8_0";
    case QuantMix::kQ4_0:
      return "q4_0";
    case QuantMix::kQ4_K_M:
      return "q4_k_m";
    case QuantMix::kQ5_K_M:
      return "q5_k_m";
    case QuantMix::kQ6_K:
      return "q6_k";
  }
  return "?";
}

uint32_t quant_mix_file_type(QuantMix m) {
  switch (m) {
    case QuantMix::kQ4_0:
      return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case QuantMix::kQ8_0:
      return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case QuantMix::kQ4_K_M:
      return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M
    case QuantMix::kQ5_K_M:
      return 17;  // LLAMA_FTYPE_MOSTLY_Q5_K_M
    case QuantMix::kQ6_K:
      return 18;  // LLAMA_FTYPE_MOSTLY_Q6_K
  }
  return 0;
}

bool important_layer(int64_t i, int64_t n) {
  if (n <= 0 || i < 0) return false;
  const int64_t e = n / 8 + (n % 8 != 0);  // ceil(n / 8) without overflow: n is from the file
  return i < e || i >= n - e || (i - e) % 3 == 2;
}

TensorPlan plan_tensor(QuantMix mix, const GgufTensor& t, bool has_output, int64_t n_layers) {
  if (!kernel::dequantize_supported(t.type))
    return {t.type, std::string("kept as ") + type_name(t.type) + " (no dequantizer)"};
  if (t.n_dims < 2 || !ends_with(t.name, ".weight")) return {DType::F32, ""};
  if (t.n_elements() < kMinQuantElems) return {DType::F32, "small: kept in f32"};

  const bool is_output =
      t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
  const bool more_bits = (t.name.find(".attn_v.") != std::string::npos ||
                          t.name.find(".ffn_down") != std::string::npos) &&
                         important_layer(layer_of(t.name), n_layers);
  DType want = DType::F32;
  std::string why;
  switch (mix) {
    case QuantMix::kQ8_0:
      want = DType::Q8_0;
      break;
    case QuantMix::kQ4_0:
      want = DType::Q4_0;
      break;
    case QuantMix::kQ6_K:
      want = DType::Q6_K;
      break;
    case QuantMix::kQ4_K_M:
    case QuantMix::kQ5_K_M:
      want = mix == QuantMix::kQ4_K_M ? DType::Q4_K : DType::Q5_K;
      if (is_output) {
        want = DType::Q6_K;
        why = "output: q6_K";
      } else if (more_bits) {
        want = DType::Q6_K;
        why = "important layer: q6_K";
      }
      break;
  }
  const int64_t row = t.ne[0];
  const int64_t bs = type_traits(want).block_elems;
  if (row % bs != 0) {
    DType fb = bs == kQKK ? k_fallback(want) : want;
    if (row % type_traits(fb).block_elems != 0) fb = DType::F16;
    why = "fallback: row length " + std::to_string(row) + " is not a multiple of " +
          std::to_string(bs) + ": " + type_name(want) + " -> " + type_name(fb);
    want = fb;
  }
  return {want, why};
}

namespace {

// Writes tensor t converted to type `to` into w, chunk by chunk (rows in parallel over pool):
// each row dequantized to f32 and quantized again. Throws naming the tensor and row when a
// value is NaN or Inf.
void convert_tensor(const GgufTensor& t, DType to, const std::string& in_path,
                    kernel::ThreadPool& pool, GgufWriter& w) {
  const int64_t ne0 = t.ne[0], nrows = t.n_rows();
  const size_t out_row = row_bytes(to, ne0);
  const size_t in_row = t.rows_unaligned ? 0 : row_bytes(t.type, ne0);
  std::vector<float> flat;  // whole tensor in f32, only for rows_unaligned inputs
  if (t.rows_unaligned) {   // blocks run across rows: dequantize the tensor as one row
    flat.assign(static_cast<size_t>(t.n_elements()), 0.0f);
    kernel::dequantize_row(t.type, t.data, flat.data(), t.n_elements());
  }
  const int64_t chunk_rows = std::max<int64_t>(1, kChunkElems / ne0);
  std::vector<uint8_t> out_buf(out_row * static_cast<size_t>(std::min(chunk_rows, nrows)));
  for (int64_t r0 = 0; r0 < nrows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, nrows - r0);
    std::atomic<int64_t> bad_row{-1};
    std::string err;
    std::atomic<bool> failed{false};
    pool.parallel_for(nr, 1, [&](int64_t b, int64_t e) {
      std::vector<float> row(static_cast<size_t>(ne0));
      try {
        for (int64_t r = r0 + b; r < r0 + e; ++r) {
          const float* x = row.data();
          if (t.rows_unaligned) {
            x = flat.data() + r * ne0;
          } else {
            kernel::dequantize_row(t.type, t.data + static_cast<size_t>(r) * in_row, row.data(),
                                   ne0);
          }
          for (int64_t j = 0; j < ne0; ++j) {
            if (!std::isfinite(x[j])) {
              bad_row.store(r);
              return;
            }
          }
          kernel::quantize_row(to, x, out_buf.data() + static_cast<size_t>(r - r0) * out_row, ne0,
                               nullptr);
        }
      } catch (const std::exception& ex) {
        if (!failed.exchange(true)) err = ex.what();
      }
    });
    if (bad_row.load() >= 0)
      throw std::runtime_error(in_path + ": tensor '" + t.name + "' row " +
                               std::to_string(bad_row.load()) + " has a NaN or Inf value");
    if (failed.load()) throw std::runtime_error(in_path + ": tensor '" + t.name + "': " + err);
    w.write_data(out_buf.data(), out_row * static_cast<size_t>(nr));
  }
}

// The output's header: the input's metadata with the new file type, and a tensor each with
// its planned type. Returns the plans, in the input's tensor order.
std::vector<TensorPlan> plan_output(const GgufFile& in, QuantMix mix, GgufWriter& w) {
  const bool has_output = in.tensor("output.weight") != nullptr;
  int64_t n_layers = 0;
  for (const GgufTensor& t : in.tensors()) n_layers = std::max(n_layers, layer_of(t.name) + 1);
  if (!in.architecture().empty())
    n_layers = static_cast<int64_t>(in.u64_or("{arch}.block_count", n_layers));
  for (const GgufKV& kv : in.metadata()) {
    if (kv.key == "general.alignment") continue;  // the writer sets it from its alignment
    w.set(kv.key, kv.value);
  }
  w.set_u32("general.file_type", quant_mix_file_type(mix));
  w.set_u32("general.quantization_version", 2);
  std::vector<TensorPlan> plans;
  plans.reserve(in.tensors().size());
  for (const GgufTensor& t : in.tensors()) {
    plans.push_back(plan_tensor(mix, t, has_output, n_layers));
    w.add_tensor(t.name, plans.back().type, t.n_dims, t.ne);
  }
  w.write_header();
  return plans;
}

}  // namespace

QuantizeResult quantize_model(const std::string& in_path, const std::string& out_path, QuantMix mix,
                              const QuantizeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  check_output_path(in_path, out_path);
  std::unique_ptr<GgufFile> in = GgufFile::open(in_path);
  if (in->tensors().empty()) throw GgufError(in_path + ": has no tensors");
  GgufWriter w(out_path, in->alignment());
  const std::vector<TensorPlan> plans = plan_output(*in, mix, w);

  const auto& tensors = in->tensors();
  QuantizeResult res;
  res.in_file_bytes = in->file_size();
  int64_t total_elems = 0, done_elems = 0;
  for (const GgufTensor& t : tensors) total_elems += t.n_elements();
  kernel::ThreadPool pool(std::max(1, opt.n_threads));
  const int width = static_cast<int>(std::to_string(tensors.size()).size());
  for (size_t ti = 0; ti < tensors.size(); ++ti) {
    const GgufTensor& t = tensors[ti];
    const DType to = plans[ti].type;
    const size_t out_bytes = row_bytes(to, t.ne[0]) * static_cast<size_t>(t.n_rows());
    res.in_tensor_bytes += t.n_bytes;
    res.out_tensor_bytes += out_bytes;
    if (to == t.type && !t.rows_unaligned) {
      w.write_data(t.data, t.n_bytes);  // same type: copy the bytes, no loss
      ++res.n_kept;
    } else {
      if (to != DType::F32 && to != DType::F16) ++res.n_quantized;
      if (plans[ti].note.rfind("fallback", 0) == 0) ++res.n_fallback;
      convert_tensor(t, to, in_path, pool, w);
    }
    done_elems += t.n_elements();
    if (!opt.log) continue;
    char line[512];
    std::snprintf(line, sizeof line, "[%*zu/%zu] %3.0f%% %-28s %-16s %6s -> %-6s %10s -> %-10s %s",
                  width, ti + 1, tensors.size(), 100.0 * done_elems / total_elems, t.name.c_str(),
                  shape(t).c_str(), type_name(t.type), type_name(to),
                  human(static_cast<double>(t.n_bytes)).c_str(),
                  human(static_cast<double>(out_bytes)).c_str(), plans[ti].note.c_str());
    opt.log(line);
  }
  w.finish();
  res.out_file_bytes = w.bytes_written();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace hpl
