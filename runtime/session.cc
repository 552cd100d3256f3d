#include "runtime/session.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <span>

#include "runtime/prompt_cache.h"
#include "runtime/session_file.h"

namespace hpl {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Session::Session(std::shared_ptr<const LoadedModel> model, const SessionOptions& opt,
                 std::shared_ptr<const LoadedModel> draft)
    : model_(std::move(model)), opt_(opt) {
  if (opt.n_ctx < 1 || opt.n_ubatch < 1 || opt.n_threads < 0)
    throw RuntimeError(Status::kInvalidArgument,
                       "session options: n_ctx, n_ubatch must be >= 1, n_threads >= 0 (got " +
                           std::to_string(opt.n_ctx) + ", " + std::to_string(opt.n_ubatch) + ", " +
                           std::to_string(opt.n_threads) + ")");
  try {
    ForwardOptions fo = opt;
    opt.spec.apply(fo);  // rewind slack for the drafts
    fwd_ = std::make_unique<Forward>(*model_->model, fo);
    if (draft && !opt.spec.draft_path.empty()) {
      const Model& dm = *draft->model;
      const Tokenizer& dt = *draft->tokenizer;
      draft_ = make_draft_source(opt.spec, *model_->model, *model_->tokenizer, fo, std::move(draft),
                                 dm, dt);
    } else {
      draft_ = make_draft_source(opt.spec, *model_->model, *model_->tokenizer, fo);
    }
  } catch (const std::bad_alloc&) {
    throw RuntimeError(Status::kOutOfMemory, "out of memory allocating a context of " +
                                                 std::to_string(opt.n_ctx) + " tokens");
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kInvalidArgument, e.what());
  }
  // No warning channel in the C API: a refused or narrowed pin mask goes to stderr.
  const std::string pin = fwd_->pool().pin_warning();
  if (!pin.empty()) std::fprintf(stderr, "hpl: warning: pinning: %s\n", pin.c_str());

  // The chat format: the named one, else the model's own (its template or turn markers); no
  // guess by architecture (the one rule of hpl chat, run --chat and serve).
  const Vocab& v = model_->tokenizer->vocab();
  try {
    if (!opt.chat_template.empty() || detect_chat_family(v) != ChatFamily::UNKNOWN)
      tmpl_ = ChatTemplate::for_vocab(v, opt.chat_template);
  } catch (const std::invalid_argument& e) {
    throw RuntimeError(Status::kInvalidArgument, e.what());
  }
}

Session::~Session() = default;

size_t Session::kv_bytes() const {
  const Forward* d = draft_ ? draft_->forward() : nullptr;
  return fwd_->kv_bytes() + (d ? d->kv_bytes() : 0);
}

size_t Session::scratch_bytes() const {
  const Forward* d = draft_ ? draft_->forward() : nullptr;
  return fwd_->scratch_bytes() + (d ? d->scratch_bytes() : 0);
}

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

std::vector<ChatMessage> Session::chat_history(const std::vector<Exchange>& ex) {
  std::vector<ChatMessage> h;
  for (const Exchange& e : ex) {
    if (e.messages.empty()) continue;
    h.insert(h.end(), e.messages.begin(), e.messages.end());
    h.push_back({"assistant", e.response});
  }
  return h;
}

std::vector<int32_t> Session::turn_tokens_after(const std::vector<Exchange>& ex, bool at_start,
                                                const RequestParams& p) const {
  const Tokenizer& tok = *model_->tokenizer;
  if (p.messages.empty()) return tok.encode(p.prompt, at_start, true);
  std::vector<ChatMessage> hist = chat_history(ex);
  std::string text;
  if (hist.empty()) {
    text = format_chat(p.messages, true);
  } else if (tmpl_ && p.messages.size() == 1 && !ex.back().messages.empty()) {
    // After a generated reply the cache holds format(h, true) + reply (+ its end of turn
    // when closed): the template's incremental form continues exactly from there.
    try {
      text = tmpl_->append_user_turn(p.messages[0], ex.back().closed, true);
    } catch (const std::invalid_argument& e) {
      throw RuntimeError(Status::kInvalidArgument, e.what());
    }
  } else {
    // Several new messages: the growth of the formatted conversation.
    const std::string before = format_chat(hist, false);
    hist.insert(hist.end(), p.messages.begin(), p.messages.end());
    const std::string now = format_chat(hist, true);
    text = starts_with(now, before) ? now.substr(before.size()) : now;
  }
  return tok.encode(text, at_start, true);
}

std::vector<int32_t> Session::turn_tokens(const RequestParams& p) const {
  return turn_tokens_after(exchanges_, tokens_.empty(), p);
}

void Session::check_turn(int64_t have, const std::vector<int32_t>& fresh, int64_t reserve) const {
  const int64_t n_new = static_cast<int64_t>(fresh.size());
  const int64_t need = have + n_new + reserve;
  if (need > n_ctx())
    throw RuntimeError(Status::kContextFull,
                       "context full: need " + std::to_string(need) + " tokens (" +
                           std::to_string(have) + " in the conversation + " +
                           std::to_string(n_new) + " new + " + std::to_string(reserve) +
                           " for the reply), have " + std::to_string(n_ctx()));
  for (int32_t t : fresh)
    if (t < 0 || t >= fwd_->n_vocab())
      throw RuntimeError(Status::kInvalidArgument,
                         "token id " + std::to_string(t) + " out of the model's range");
}

std::vector<int32_t> Session::prepare_turn(const RequestParams& p, int64_t reserve) const {
  const std::vector<int32_t> fresh = turn_tokens(p);
  const int64_t have = static_cast<int64_t>(tokens_.size());
  check_turn(have, fresh, reserve);
  if (have + static_cast<int64_t>(fresh.size()) == n_past())
    throw RuntimeError(Status::kInvalidArgument, "the prompt encodes to no tokens");
  return fresh;
}

int64_t Session::begin_stateless_turn(const RequestParams& p, int64_t reserve, PromptCache* cache) {
  std::vector<int32_t> toks = turn_tokens_after({}, true, p);
  check_turn(0, toks, reserve);
  if (toks.empty()) throw RuntimeError(Status::kInvalidArgument, "the prompt encodes to no tokens");
  const int64_t max_keep = cache ? static_cast<int64_t>(toks.size()) - 1 : 0;
  if (cache) cache->select(*this, toks);
  return start_conversation(std::move(toks), {}, max_keep);
}

void Session::evaluate_pending() {
  const int64_t n = n_pending();
  if (n > 0) fwd_->eval(tokens_.data() + n_past(), n, nullptr);
}

void Session::load_prefix_file(const std::string& path, const RequestParams* expect) {
  const LoadedModel& m = *model_;
  StateFileContent c = load_state_file(fwd_->cache(), {m.model->config, m.identity, m.path}, path);
  tokens_ = std::move(c.tokens);
  exchanges_.clear();
  if (n_past() != static_cast<int64_t>(tokens_.size()))
    tokens_.resize(static_cast<size_t>(n_past()));
  if (!expect) return;
  const std::vector<int32_t> want = turn_tokens_after({}, true, *expect);
  const size_t n = tokens_.size();
  const size_t same = static_cast<size_t>(
      std::mismatch(tokens_.begin(), tokens_.end(), want.begin(),
                    want.begin() + static_cast<std::ptrdiff_t>(std::min(n, want.size())))
          .first -
      tokens_.begin());
  if (same < n || n == 0) {
    clear();
    throw RuntimeError(Status::kSessionMismatch,
                       path + ": the prefix file holds " + std::to_string(n) +
                           " tokens that are not the start of this prompt's " +
                           std::to_string(want.size()) + " (they differ from token " +
                           std::to_string(same) + " on): save it again");
  }
}

int64_t Session::start_conversation(std::vector<int32_t> toks, std::vector<Exchange> ex,
                                    int64_t max_keep) {
  const KvCache& kv = fwd_->cache();
  const int64_t keep =
      reusable_prefix(kv.layout(), kv.first_positions(), kv_tokens(), toks, max_keep);
  fwd_->truncate(keep);  // keep == 0 forgets everything
  tokens_ = std::move(toks);
  exchanges_ = std::move(ex);
  return keep;
}

GenerateResult Session::run_turn(const RequestParams& p, const std::vector<int32_t>& fresh,
                                 const TextFn& on_text, const StopFn& should_stop) {
  const Tokenizer& tok = *model_->tokenizer;
  const bool chat = !p.messages.empty() && tmpl_;
  GenerateParams gp = p;
  if (chat) gp.stop_strings.push_back(tmpl_->end_of_turn());
  gp.spec.source = draft_.get();
  gp.spec.draft_max = opt_.spec.draft_max;
  gp.spec.draft_min = opt_.spec.draft_min;
  Sampler sampler(p.sampling, fwd_->n_vocab());
  std::unique_ptr<GrammarConstraint> constraint;
  if (!p.format.empty()) {
    try {
      constraint = std::make_unique<GrammarConstraint>(compile_output_format(p.format),
                                                       model_->vocab_trie.get(tok), tok);
    } catch (const std::exception& e) {
      throw RuntimeError(Status::kInvalidArgument, e.what());
    }
    sampler.set_constraint(constraint.get());
  }

  const size_t turn_start = tokens_.size();
  tokens_.insert(tokens_.end(), fresh.begin(), fresh.end());
  const std::span<const int32_t> all(tokens_);
  const size_t past = static_cast<size_t>(n_past());
  prime_sampler(sampler, all.first(past));
  gp.spec.past = all.first(past);
  GenerateResult r;
  try {
    r = generate(*fwd_, tok, sampler, all.subspan(past), gp, on_text, should_stop);
  } catch (...) {
    rollback(turn_start);
    throw;
  }
  if (!r.prompt_done) {  // stopped during the prompt: it never joined the conversation
    rollback(turn_start);
    return r;
  }
  tokens_.insert(tokens_.end(), r.tokens.begin(), r.tokens.end());
  // Closed: an end-of-generation token, or the end-of-turn text generated as plain tokens.
  bool closed = r.finish == FinishReason::kEndOfGeneration;
  if (chat && r.finish == FinishReason::kStopString)
    closed = tok.decode(r.tokens, true).find(tmpl_->end_of_turn()) != std::string::npos;
  exchanges_.push_back({p.prompt, p.messages, r.text, closed});
  return r;
}

const ChatMessage* Session::opening_system() const {
  if (exchanges_.empty() || exchanges_[0].messages.empty()) return nullptr;
  const ChatMessage& m = exchanges_[0].messages[0];
  return m.role == "system" ? &m : nullptr;
}

std::vector<Exchange> Session::last_exchanges(int k) const {
  std::vector<Exchange> kept;
  if (k <= 0 || exchanges_.empty()) return kept;
  const size_t n = std::min(exchanges_.size(), static_cast<size_t>(k));
  kept.assign(exchanges_.end() - static_cast<std::ptrdiff_t>(n), exchanges_.end());
  const ChatMessage* sys = opening_system();
  std::vector<ChatMessage>& first = kept[0].messages;
  if (sys && !first.empty() && first[0].role != "system") first.insert(first.begin(), *sys);
  for (Exchange& e : kept) e.closed = false;  // the next turn writes the last end of turn
  return kept;
}

// A conversation of chat turns only is the formatted history up to the last reply, encoded
// once (as a fresh conversation would be); the last reply stays open, as after a live turn
// that ended at max_tokens, so the next turn's incremental form continues it exactly. Otherwise
// turn by turn: a raw turn is its prompt then its response; a chat turn is the formatted
// conversation's growth over it (messages, response, end of turn).
std::vector<int32_t> Session::replay_tokens(const std::vector<Exchange>& ex) const {
  const Tokenizer& tok = *model_->tokenizer;
  const bool all_chat =
      std::all_of(ex.begin(), ex.end(), [](const Exchange& e) { return !e.messages.empty(); });
  if (ex.empty()) return {};
  if (all_chat) {  // what a live conversation holds after its last reply: format(h, true) + reply
    std::vector<ChatMessage> h = chat_history(ex);
    h.pop_back();
    return tok.encode(format_chat(h, true) + ex.back().response, true, true);
  }
  std::vector<int32_t> out;
  std::vector<ChatMessage> hist;
  for (const Exchange& e : ex) {
    const bool at_start = out.empty();
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
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

void Session::keep_last_exchanges(int k) {
  std::vector<Exchange> kept = last_exchanges(k);
  std::vector<int32_t> toks = replay_tokens(kept);
  const auto n = static_cast<int64_t>(toks.size());
  start_conversation(std::move(toks), std::move(kept), n);
}

int Session::restart_to_fit(RequestParams& p, int max_keep, int64_t reserve) {
  const ChatMessage* sys = opening_system();
  int keep = static_cast<int>(std::min<size_t>(std::max(0, max_keep), exchanges_.size()));
  std::vector<Exchange> kept;
  std::vector<int32_t> toks;
  RequestParams q = p;
  int64_t n = 0;
  for (;; --keep) {
    kept = last_exchanges(keep);
    toks = replay_tokens(kept);
    q = p;
    if (keep == 0 && sys && !q.messages.empty() && q.messages[0].role != "system")
      q.messages.insert(q.messages.begin(), *sys);
    n = static_cast<int64_t>(toks.size() + turn_tokens_after(kept, toks.empty(), q).size());
    if (n + reserve <= n_ctx() || keep == 0) break;
  }
  if (n > n_ctx() - 1) return -1;
  const auto n_toks = static_cast<int64_t>(toks.size());
  start_conversation(std::move(toks), std::move(kept), n_toks);
  p = std::move(q);
  return keep;
}

}  // namespace hpl
