#include "runtime/session_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

namespace hpl {

namespace {

constexpr char kMagic[8] = {'H', 'P', 'L', 'S', 'E', 'S', 'S', '\0'};

class Writer {
 public:
  void bytes(const void* p, size_t n) {
    if (n > 0) buf_.append(static_cast<const char*>(p), n);  // p may be null when n == 0
  }
  template <class T>
  void pod(const T& v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  std::string& buf() { return buf_; }

 private:
  std::string buf_;
};

// Bounds-checked reader over the whole file; every read names what was cut short.
class Reader {
 public:
  Reader(const std::string& data, const std::string& path) : d_(data), path_(path) {}
  void bytes(void* p, size_t n, const char* what) {
    if (n == 0) return;  // p may be null (no tokens): memcpy must not see it
    if (n > d_.size() - pos_)
      throw RuntimeError(Status::kIo, path_ + ": truncated session file (reading " + what +
                                          " at offset " + std::to_string(pos_) + ")");
    std::memcpy(p, d_.data() + pos_, n);
    pos_ += n;
  }
  template <class T>
  T pod(const char* what) {
    T v;
    bytes(&v, sizeof v, what);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = pod<uint64_t>(what);
    if (n > d_.size() - pos_)
      throw RuntimeError(Status::kIo, path_ + ": truncated session file (" + what + " of " +
                                          std::to_string(n) + " bytes at offset " +
                                          std::to_string(pos_) + ")");
    std::string s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }
  void skip(size_t n) { pos_ += n; }  // n checked by the caller

 private:
  const std::string& d_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void save_state_file(KvCache& kv, const LoadedModelInfo& m, std::span<const int32_t> tokens,
                     const std::vector<Exchange>& exchanges, bool whole_window,
                     const std::string& path) {
  const ModelConfig& cfg = m.config;
  const int64_t n_past = kv.n_past();
  Writer w;
  w.bytes(kMagic, sizeof kMagic);
  w.pod(kSessionFileVersion);
  w.pod(static_cast<uint32_t>(kv.type()));
  const ModelIdentity& id = m.identity;
  w.pod(id.file_size);
  w.pod(id.hparams_hash);
  w.pod(id.tensors_hash);
  w.pod(cfg.n_layer);
  w.pod(kv.kv_dim());
  w.pod(kv.n_ctx());
  w.pod(n_past);
  w.pod(static_cast<int64_t>(tokens.size()));
  w.bytes(tokens.data(), tokens.size() * sizeof(int32_t));
  w.pod(static_cast<uint32_t>(exchanges.size()));
  for (const Exchange& e : exchanges) {
    w.str(e.prompt);
    w.pod(static_cast<uint32_t>(e.messages.size()));
    for (const ChatMessage& m : e.messages) {
      w.str(m.role);
      w.str(m.content);
    }
    w.str(e.response);
    w.pod(static_cast<uint8_t>(e.closed));
  }
  const size_t row = kv.row_bytes();
  for (int64_t il = 0; il < cfg.n_layer; ++il) {
    const int64_t first = whole_window ? kv.first_pos(il) : kv.needed_from(il);
    w.pod(first);
    for (int64_t p = first; p < n_past; ++p) w.bytes(kv.k(il, p), row);
    for (int64_t p = first; p < n_past; ++p) w.bytes(kv.v(il, p), row);
  }
  Fnv1a h;
  h.add(w.buf().data(), w.buf().size());
  w.pod(h.value());

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw RuntimeError(Status::kIo, tmp + ": cannot open for writing");
    f.write(w.buf().data(), static_cast<std::streamsize>(w.buf().size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw RuntimeError(Status::kIo, tmp + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw RuntimeError(Status::kIo, path + ": cannot rename " + tmp + " into place");
  }
}

// long-function: the file's fields read and checked in file order, all into locals, so the
// session is replaced only once everything has been validated.
StateFileContent load_state_file(KvCache& kv, const LoadedModelInfo& m, const std::string& path) {
  std::string data;
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw RuntimeError(Status::kIo, path + ": cannot open session file");
    data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (f.bad()) throw RuntimeError(Status::kIo, path + ": read failed");
  }
  Reader r(data, path);
  char magic[8];
  r.bytes(magic, sizeof magic, "magic");
  if (std::memcmp(magic, kMagic, sizeof magic) != 0)
    throw RuntimeError(Status::kIo, path + ": not a session file (bad magic)");
  const auto version = r.pod<uint32_t>("version");
  if (version != kSessionFileVersion)
    throw RuntimeError(Status::kSessionMismatch,
                       path + ": session file version " + std::to_string(version) +
                           ", this build reads version " + std::to_string(kSessionFileVersion));
  const auto kv_type = r.pod<uint32_t>("KV cache type");
  if (kv_type != static_cast<uint32_t>(kv.type()))
    throw RuntimeError(Status::kSessionMismatch, path + ": session KV cache type is " +
                                                     kv_type_name(static_cast<DType>(kv_type)) +
                                                     ", this session's is " +
                                                     kv_type_name(kv.type()));
  if (data.size() < r.pos() + sizeof(uint64_t))
    throw RuntimeError(Status::kIo, path + ": truncated session file (no checksum)");
  Fnv1a h;
  h.add(data.data(), data.size() - sizeof(uint64_t));
  uint64_t stored;
  std::memcpy(&stored, data.data() + data.size() - sizeof stored, sizeof stored);

  ModelIdentity id;
  id.file_size = r.pod<uint64_t>("model file size");
  id.hparams_hash = r.pod<uint64_t>("hparams hash");
  id.tensors_hash = r.pod<uint64_t>("tensors hash");
  if (!(id == m.identity))
    throw RuntimeError(Status::kSessionMismatch,
                       path + ": session was saved from another model (" + to_string(id) +
                           "); the loaded model " + m.path + " is (" + to_string(m.identity) + ")");
  if (h.value() != stored)
    throw RuntimeError(Status::kIo, path + ": session file checksum mismatch (corrupt file)");
  const auto n_layer = r.pod<int64_t>("n_layer");
  const auto kv_dim = r.pod<int64_t>("kv_dim");
  r.pod<int64_t>("n_ctx");
  const auto n_past = r.pod<int64_t>("n_past");
  const auto n_tokens = r.pod<int64_t>("n_tokens");
  const ModelConfig& cfg = m.config;
  if (n_layer != cfg.n_layer || kv_dim != kv.kv_dim())
    throw RuntimeError(Status::kSessionMismatch, path + ": KV layout (" + std::to_string(n_layer) +
                                                     " layers x " + std::to_string(kv_dim) +
                                                     ") does not match the model's");
  if (n_tokens < 0 || n_past < 0 || n_past > n_tokens)
    throw RuntimeError(Status::kIo, path + ": bad token counts (n_past " + std::to_string(n_past) +
                                        ", n_tokens " + std::to_string(n_tokens) + ")");
  if (n_tokens > kv.n_ctx())
    throw RuntimeError(Status::kSessionMismatch,
                       path + ": session holds " + std::to_string(n_tokens) +
                           " tokens, more than this session's context of " +
                           std::to_string(kv.n_ctx()));
  if (static_cast<uint64_t>(n_tokens) * sizeof(int32_t) > data.size())
    throw RuntimeError(Status::kIo, path + ": truncated session file (tokens)");
  std::vector<int32_t> tokens(static_cast<size_t>(n_tokens));
  r.bytes(tokens.data(), tokens.size() * sizeof(int32_t), "tokens");
  for (int32_t t : tokens)
    if (t < 0 || t >= cfg.n_vocab)
      throw RuntimeError(Status::kIo, path + ": token id " + std::to_string(t) + " out of range");
  const auto n_ex = r.pod<uint32_t>("exchange count");
  std::vector<Exchange> exchanges;
  for (uint32_t i = 0; i < n_ex; ++i) {
    Exchange e;
    e.prompt = r.str("prompt");
    const auto n_msg = r.pod<uint32_t>("message count");
    for (uint32_t j = 0; j < n_msg; ++j) {
      ChatMessage m;
      m.role = r.str("role");
      m.content = r.str("content");
      e.messages.push_back(std::move(m));
    }
    e.response = r.str("response");
    e.closed = r.pod<uint8_t>("closed flag") != 0;
    exchanges.push_back(std::move(e));
  }
  const size_t row = kv.row_bytes();  // kv_dim == kv.kv_dim() and the type were checked
  // Per layer: the first position stored, which must cover what the next position attends to
  // and fit the layer's capacity in this session; then K and V of [first, n_past).
  std::vector<int64_t> firsts;
  size_t kv_bytes = 0;
  {
    Reader scan = r;
    for (int64_t il = 0; il < n_layer; ++il) {
      const auto first = scan.pod<int64_t>("layer first position");
      const size_t l = static_cast<size_t>(il);
      const int64_t need = std::max<int64_t>(0, n_past - kv.layout().keep[l]);
      if (first < 0 || first > need || n_past - first > kv.layout().capacity[l])
        throw RuntimeError(Status::kSessionMismatch,
                           path + ": layer " + std::to_string(il) + " stores positions from " +
                               std::to_string(first) + ", which this session cannot hold");
      const size_t bytes = 2 * row * static_cast<size_t>(n_past - first);
      if (data.size() - scan.pos() < bytes + sizeof(uint64_t))
        throw RuntimeError(Status::kIo,
                           path + ": truncated KV section (layer " + std::to_string(il) + ")");
      scan.skip(bytes);
      kv_bytes += sizeof(int64_t) + bytes;
      firsts.push_back(first);
    }
  }
  if (data.size() - r.pos() != kv_bytes + sizeof(uint64_t))
    throw RuntimeError(Status::kIo, path + ": KV section is " +
                                        std::to_string(data.size() - r.pos() - sizeof(uint64_t)) +
                                        " bytes, expected " + std::to_string(kv_bytes));
  // Everything is validated: apply.
  kv.clear();
  for (int64_t il = 0; il < n_layer; ++il) {
    const int64_t first = firsts[static_cast<size_t>(il)];
    r.pod<int64_t>("layer first position");
    kv.set_first_pos(il, first);
    for (int64_t p = first; p < n_past; ++p) r.bytes(kv.k(il, p), row, "K");
    for (int64_t p = first; p < n_past; ++p) r.bytes(kv.v(il, p), row, "V");
  }
  kv.set_n_past(n_past);
  return {std::move(tokens), std::move(exchanges)};
}

namespace {
LoadedModelInfo info_of(const Session& s) {
  return {s.model().model->config, s.model().identity, s.model().path};
}
}  // namespace

void save_session_file(Session& s, const std::string& path) {
  save_state_file(s.kv_cache(), info_of(s), s.tokens(), s.exchanges(), false, path);
}

void load_session_file(Session& s, const std::string& path) {
  StateFileContent c = load_state_file(s.kv_cache(), info_of(s), path);
  s.tokens() = std::move(c.tokens);
  s.exchanges() = std::move(c.exchanges);
}

}  // namespace hpl
