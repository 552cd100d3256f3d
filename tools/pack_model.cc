// GGUF <-> packed GGUF; see pack_model.h.
#include "tools/pack_model.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <vector>

#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/repack_weights.h"
#include "gguf/gguf_writer.h"
#include "kernel/repack.h"
#include "tools/quantize_model.h"

namespace hpl {
namespace {

constexpr int64_t kChunkRows = 1024;  // rows moved per write; a multiple of kPackRows

// Copies in's metadata (but the keys the writer or the direction own) and every tensor to
// out_path; tensors named by `change` go through move(t, rows r0.., n, dst) into type to(t).
template <class To, class Move>
PackResult rewrite(const GgufFile& in, const std::string& out_path, bool packed_out,
                   const std::set<std::string>& change, To to, Move move,
                   const std::function<void(const std::string&)>& log) {
  const auto t0 = std::chrono::steady_clock::now();
  GgufWriter w(out_path, packed_out ? std::max(in.alignment(), kPackedAlignment) : in.alignment());
  for (const GgufKV& kv : in.metadata()) {
    if (kv.key == "general.alignment" || kv.key == kPackedLayoutKey) continue;
    w.set(kv.key, kv.value);
  }
  if (packed_out) w.set_u32(kPackedLayoutKey, kPackedLayoutVersion);
  for (const GgufTensor& t : in.tensors()) {
    w.add_tensor(t.name, change.count(t.name) ? to(t) : t.type, t.n_dims, t.ne);
  }
  w.write_header();
  PackResult res;
  res.in_file_bytes = in.file_size();
  std::vector<uint8_t> buf;
  for (const GgufTensor& t : in.tensors()) {
    if (!change.count(t.name)) {
      w.write_data(t.data, t.n_bytes);
      ++res.n_kept;
      continue;
    }
    const size_t stride = row_bytes(t.type, t.ne[0]);
    for (int64_t r = 0; r < t.n_rows(); r += kChunkRows) {
      const int64_t n = std::min(kChunkRows, t.n_rows() - r);
      buf.resize(stride * static_cast<size_t>(n));
      move(t, t.data + static_cast<size_t>(r) * stride, n, buf.data());
      w.write_data(buf.data(), buf.size());
    }
    ++res.n_changed;
    res.changed_bytes += t.n_bytes;
    if (log) log(t.name + ": " + type_name(t.type) + " -> " + type_name(to(t)));
  }
  w.finish();
  res.out_file_bytes = w.bytes_written();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace

PackResult pack_model(const std::string& in_path, const std::string& out_path,
                      const std::function<void(const std::string&)>& log) {
  check_output_path(in_path, out_path);
  std::unique_ptr<GgufFile> in = GgufFile::open(in_path);
  if (in->packed_layout() != 0) {
    throw std::runtime_error(in_path + ": is packed already (" + kPackedLayoutKey + " = " +
                             std::to_string(in->packed_layout()) + ")");
  }
  const ModelConfig c = read_model_config(*in);
  const std::set<std::string> names =
      packable_tensors(load_model_weights(*in, c, /*count_only=*/true));
  return rewrite(
      *in, out_path, true, names, [](const GgufTensor& t) { return kernel::packed_type(t.type); },
      [](const GgufTensor& t, const uint8_t* src, int64_t n, uint8_t* dst) {
        kernel::repack_rows(t.type, src, row_bytes(t.type, t.ne[0]), n, t.ne[0], dst);
      },
      log);
}

PackResult unpack_model(const std::string& in_path, const std::string& out_path,
                        const std::function<void(const std::string&)>& log) {
  check_output_path(in_path, out_path);
  std::unique_ptr<GgufFile> in = GgufFile::open(in_path);
  if (in->packed_layout() == 0) {
    throw std::runtime_error(in_path + ": is not a packed file (no " + kPackedLayoutKey + " key)");
  }
  std::set<std::string> names;
  for (const GgufTensor& t : in->tensors()) {
    if (is_packed_type(t.type)) names.insert(t.name);
  }
  return rewrite(
      *in, out_path, false, names,
      [](const GgufTensor& t) { return kernel::unpacked_type(t.type); },
      [](const GgufTensor& t, const uint8_t* src, int64_t n, uint8_t* dst) {
        kernel::unpack_rows(t.type, src, n, t.ne[0], dst, row_bytes(t.type, t.ne[0]));
      },
      log);
}

}  // namespace hpl
