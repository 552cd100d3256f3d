#include "engine/session.h"

#include <new>

namespace hpl {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Session::Session(std::shared_ptr<const LoadedModel> model, const SessionOptions& opt)
    : model_(std::move(model)), opt_(opt) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1 || opt.n_threads < 1)
    throw RuntimeError(Status::kInvalidArgument,
                       "session options: n_ctx, n_batch and n_threads must be >= 1 (got " +
                           std::to_string(opt.n_ctx) + ", " + std::to_string(opt.n_ubatch) + ", " +
                           std::to_string(opt.n_threads) + ")");
  ForwardOptions fo;
  fo.n_ctx = opt.n_ctx;
  fo.n_ubatch = opt.n_ubatch;
  fo.n_threads = opt.n_threads;
  try {
    fwd_ = std::make_unique<Forward>(*model_->model, fo);
  } catch (const std::bad_alloc&) {
    throw RuntimeError(Status::kOutOfMemory, "out of memory allocating a context of " +
                                                 std::to_string(opt.n_ctx) + " tokens");
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kInvalidArgument, e.what());
  }
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

// A built-in formatter keyed on the markers of the model's chat template: Gemma, ChatML
// (Qwen2, SmolLM), Zephyr (TinyLlama chat); anything else gets "role: content" lines.
std::string Session::format_chat(const std::vector<ChatMessage>& msgs, bool add_assistant) const {
  const std::string& tmpl = model_->tokenizer->vocab().chat_template;
  std::string out;
  if (tmpl.find("<start_of_turn>") != std::string::npos) {
    std::string system;
    for (const ChatMessage& m : msgs) {
      if (m.role == "system") {
        system += m.content + "\n\n";
        continue;
      }
      const char* role = m.role == "assistant" ? "model" : m.role.c_str();
      out += "<start_of_turn>" + std::string(role) + "\n" + system + m.content + "<end_of_turn>\n";
      system.clear();
    }
    if (add_assistant) out += "<start_of_turn>model\n";
  } else if (tmpl.find("<|im_start|>") != std::string::npos) {
    for (const ChatMessage& m : msgs)
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_assistant) out += "<|im_start|>assistant\n";
  } else if (tmpl.find("<|user|>") != std::string::npos) {
    for (const ChatMessage& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
    if (add_assistant) out += "<|assistant|>\n";
  } else {
    for (const ChatMessage& m : msgs) out += m.role + ": " + m.content + "\n";
    if (add_assistant) out += "assistant:";
  }
  return out;
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
  std::vector<ChatMessage> all = chat_history();
  const std::string before = all.empty() ? std::string() : format_chat(all, false);
  all.insert(all.end(), p.messages.begin(), p.messages.end());
  const std::string now = format_chat(all, true);
  const std::string delta = starts_with(now, before) ? now.substr(before.size()) : now;
  return tok.encode(delta, at_start, true);
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
