#include "runtime/session.h"

#include <cstdio>
#include <new>

namespace hpl {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Session::Session(std::shared_ptr<const LoadedModel> model, const SessionOptions& opt)
    : model_(std::move(model)), opt_(opt) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1 || opt.n_threads < 0)
    throw RuntimeError(Status::kInvalidArgument,
                       "session options: n_ctx, n_batch must be >= 1, n_threads >= 0 (got " +
                           std::to_string(opt.n_ctx) + ", " + std::to_string(opt.n_ubatch) + ", " +
                           std::to_string(opt.n_threads) + ")");
  ForwardOptions fo;
  fo.n_ctx = opt.n_ctx;
  fo.n_ubatch = opt.n_ubatch;
  fo.n_threads = opt.n_threads;
  fo.cpus = opt.cpus;
  try {
    fwd_ = std::make_unique<Forward>(*model_->model, fo);
  } catch (const std::bad_alloc&) {
    throw RuntimeError(Status::kOutOfMemory, "out of memory allocating a context of " +
                                                 std::to_string(opt.n_ctx) + " tokens");
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kInvalidArgument, e.what());
  }
  // No warning channel in the C API: a refused or narrowed pin mask goes to stderr.
  const std::string pin = fwd_->pool().pin_warning();
  if (!pin.empty()) std::fprintf(stderr, "hpl: warning: pinning: %s\n", pin.c_str());
  const Vocab& v = model_->tokenizer->vocab();
  if (detect_chat_family(v) != ChatFamily::UNKNOWN) tmpl_ = ChatTemplate::for_vocab(v);
}

Session::~Session() = default;

void Session::clear() {
  tokens_.clear();
  exchanges_.clear();
  fwd_->reset();
}

void Session::rollback(size_t n_tokens) {
  if (n_tokens < tokens_.size()) tokens_.resize(n_tokens);
  if (fwd_->n_past() > static_cast<int64_t>(tokens_.size()))
    fwd_->truncate(static_cast<int64_t>(tokens_.size()));
}

// The model's chat format (tokenizer/chat_template.h); a model without one (base models such
// as TinyStories) gets plain "role: content" lines.
std::string Session::format_chat(const std::vector<ChatMessage>& msgs, bool add_assistant) const {
  if (tmpl_) {
    try {
      return tmpl_->format(msgs, add_assistant);
    } catch (const std::invalid_argument& e) {
      throw RuntimeError(Status::kInvalidArgument, e.what());
    }
  }
  std::string out;
  for (const ChatMessage& m : msgs) out += m.role + ": " + m.content + "\n";
  if (add_assistant) out += "assistant:";
  return out;
}

std::string Session::chat_turn_text(const std::vector<ChatMessage>& fresh) const {
  std::vector<ChatMessage> hist = chat_history();
  if (hist.empty()) return format_chat(fresh, true);
  // After a generated reply the cache holds format(h, true) + reply (+ its end-of-turn token
  // when closed): the template's incremental form continues exactly from there.
  const Exchange& last = exchanges_.back();
  if (tmpl_ && fresh.size() == 1 && !last.messages.empty()) {
    try {
      return tmpl_->append_user_turn(fresh[0], last.closed, true);
    } catch (const std::invalid_argument& e) {
      throw RuntimeError(Status::kInvalidArgument, e.what());
    }
  }
  // Several new messages: the growth of the formatted conversation.
  const std::string before = format_chat(hist, false);
  hist.insert(hist.end(), fresh.begin(), fresh.end());
  const std::string now = format_chat(hist, true);
  return starts_with(now, before) ? now.substr(before.size()) : now;
}

std::vector<ChatMessage> Session::chat_history() const {
  std::vector<ChatMessage> h;
  for (const Exchange& e : exchanges_) {
    if (e.messages.empty()) continue;
    h.insert(h.end(), e.messages.begin(), e.messages.end());
    h.push_back({"assistant", e.response});
  }
  return h;
}

std::vector<int32_t> Session::turn_tokens(const RequestParams& p) const {
  const Tokenizer& tok = *model_->tokenizer;
  const bool at_start = tokens_.empty();
  if (p.messages.empty()) return tok.encode(p.prompt, at_start, true);
  return tok.encode(chat_turn_text(p.messages), at_start, true);
}

void Session::keep_last_exchanges(int k) {
  std::vector<Exchange> kept;
  if (k > 0 && !exchanges_.empty()) {
    const size_t n = std::min(exchanges_.size(), static_cast<size_t>(k));
    kept.assign(exchanges_.end() - static_cast<std::ptrdiff_t>(n), exchanges_.end());
  }
  clear();
  // Replay the kept turns as text: a raw turn is its prompt then its response; a chat turn is
  // the formatted conversation's growth over it (messages, response, end of turn).
  const Tokenizer& tok = *model_->tokenizer;
  std::vector<ChatMessage> hist;
  for (Exchange& e : kept) {
    const bool at_start = tokens_.empty();
    std::vector<int32_t> t;
    if (e.messages.empty()) {
      t = tok.encode(e.prompt, at_start, true);
      std::vector<int32_t> r = tok.encode(e.response, false, false);
      t.insert(t.end(), r.begin(), r.end());
    } else {
      const std::string before = hist.empty() ? std::string() : format_chat(hist, false);
      hist.insert(hist.end(), e.messages.begin(), e.messages.end());
      hist.push_back({"assistant", e.response});
      const std::string now = format_chat(hist, false);
      t = tok.encode(starts_with(now, before) ? now.substr(before.size()) : now, at_start, true);
    }
    tokens_.insert(tokens_.end(), t.begin(), t.end());
    exchanges_.push_back(std::move(e));
  }
}

}  // namespace hpl
