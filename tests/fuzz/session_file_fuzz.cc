// libFuzzer target for the session-file loader (load_session_file): any file either loads or
// throws RuntimeError, never crashes, leaks or leaves the session half-replaced; what loads
// is usable (re-tokenizing the kept exchanges, one more token evaluated) and saves back to a
// file that loads to the same conversation.
// The checksum and the model identity would stop almost every mutation early, so the first
// input byte picks how the rest becomes a file:
//   0: the rest is the file as is;
//   1: header for the fuzz model (magic, version, identity) + rest + a correct checksum;
//   2: rest + a correct checksum.
// Model: stories260K (HPL_TEST_DATA, default tests/data). With HPL_FUZZ_SEEDS=DIR set, the
// initializer writes seeds (a saved two-exchange session in each mode) into DIR.
// Built by tests/fuzz/run-fuzz.sh session_file.
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/model_identity.h"
#include "runtime/model_registry.h"
#include "runtime/session.h"
#include "runtime/session_file.h"

namespace {

constexpr size_t kHeaderBytes = 8 + 4 + 4 + 3 * 8;  // magic, version, KV type, identity

struct Fixture {
  hpl::ModelRegistry registry;
  std::shared_ptr<const hpl::LoadedModel> model;
  std::unique_ptr<hpl::Session> session;
  std::string in_path, out_path;
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) std::abort();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string with_checksum(std::string body) {
  hpl::Fnv1a h;
  h.add(body.data(), body.size());
  const uint64_t v = h.value();
  body.append(reinterpret_cast<const char*>(&v), sizeof v);
  return body;
}

Fixture& fixture() {
  static Fixture* fx = [] {
    auto* f = new Fixture;
    const char* data = std::getenv("HPL_TEST_DATA");
    f->model =
        f->registry.acquire(std::string(data ? data : "tests/data") + "/models/stories260K.gguf");
    hpl::SessionOptions opt;
    opt.n_ctx = 64;
    opt.n_ubatch = 16;
    f->session = std::make_unique<hpl::Session>(f->model, opt);
    const std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
    f->in_path = dir + "/hpl-session-fuzz-in." + std::to_string(getpid());
    f->out_path = dir + "/hpl-session-fuzz-out." + std::to_string(getpid());
    return f;
  }();
  return *fx;
}

void write_seeds(const std::string& dir) {
  Fixture& fx = fixture();
  hpl::Session& s = *fx.session;
  s.clear();
  std::vector<int32_t> ids = {1, 400, 261, 300, 270, 420, 350, 290};
  s.forward().eval(ids.data(), static_cast<int64_t>(ids.size()), nullptr);
  ids.push_back(333);  // the pending token: sampled, not evaluated
  s.tokens() = ids;
  hpl::Exchange raw;
  raw.prompt = "Once upon a time";
  raw.response = " there was";
  hpl::Exchange chat;
  chat.messages = {{"system", "Be brief."}, {"user", "Hi"}};
  chat.response = "Hello";
  chat.closed = true;
  s.exchanges() = {raw, chat};
  hpl::save_session_file(s, fx.out_path);
  const std::string file = read_file(fx.out_path);
  std::remove(fx.out_path.c_str());
  const std::string body = file.substr(kHeaderBytes, file.size() - kHeaderBytes - 8);
  write_file(dir + "/seed-raw", std::string(1, '\0') + file);
  write_file(dir + "/seed-framed", std::string(1, '\1') + body);
  write_file(dir + "/seed-nochecksum", std::string(1, '\2') + file.substr(0, file.size() - 8));
  s.clear();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fixture();
  if (const char* dir = std::getenv("HPL_FUZZ_SEEDS")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& fx = fixture();
  hpl::Session& s = *fx.session;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string file;
  switch (data[0] % 3) {
    case 0:
      file = rest;
      break;
    case 1: {
      const hpl::ModelIdentity& id = fx.model->identity;
      file.append("HPLSESS\0", 8);
      const uint32_t version = hpl::kSessionFileVersion;
      const auto kv_type = static_cast<uint32_t>(s.kv_cache().type());
      file.append(reinterpret_cast<const char*>(&version), 4);
      file.append(reinterpret_cast<const char*>(&kv_type), 4);
      for (uint64_t v : {id.file_size, id.hparams_hash, id.tensors_hash})
        file.append(reinterpret_cast<const char*>(&v), 8);
      file = with_checksum(file + rest);
      break;
    }
    default:
      file = with_checksum(rest);
      break;
  }
  write_file(fx.in_path, file);

  // A failed load leaves the session as it was: here, one pending token and no exchange.
  s.clear();
  s.tokens() = {1};
  try {
    hpl::load_session_file(s, fx.in_path);
  } catch (const hpl::RuntimeError&) {
    if (s.tokens() != std::vector<int32_t>{1} || s.n_past() != 0 || !s.exchanges().empty())
      __builtin_trap();
    return 0;
  }
  const auto n_tokens = static_cast<int64_t>(s.tokens().size());
  if (s.n_past() < 0 || s.n_past() > n_tokens || n_tokens > s.n_ctx()) __builtin_trap();

  // What loaded saves back to a file that loads to the same conversation.
  const std::vector<int32_t> tokens = s.tokens();
  const int64_t n_past = s.n_past();
  const size_t n_exchanges = s.exchanges().size();
  hpl::save_session_file(s, fx.out_path);
  s.clear();
  hpl::load_session_file(s, fx.out_path);
  std::remove(fx.out_path.c_str());
  if (s.tokens() != tokens || s.n_past() != n_past || s.exchanges().size() != n_exchanges)
    __builtin_trap();

  // And is usable: one more token evaluated when there is room, the exchanges re-tokenized.
  if (n_past < s.n_ctx()) {
    const int32_t t = 1;
    s.forward().eval(&t, 1, nullptr);
  }
  try {
    s.keep_last_exchanges(2);
  } catch (const hpl::RuntimeError&) {
  }
  return 0;
}
