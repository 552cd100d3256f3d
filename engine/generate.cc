#include "engine/generate.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "engine/stop_matcher.h"

namespace hpl {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEndOfGeneration:
      return "end_of_generation";
    case FinishReason::kMaxTokens:
      return "max_tokens";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kStopped:
      return "stopped";
    case FinishReason::kContextEnd:
      return "context_end";
  }
  return "?";
}

void check_prompt_fits(int64_t n_new, int64_t n_past, int64_t n_ctx) {
  if (n_past + n_new > n_ctx) {
    std::string need = std::to_string(n_new) + " tokens";
    if (n_past > 0) need += " after the " + std::to_string(n_past) + " already in the context";
    throw ModelError("prompt too long: it needs " + need + ", but the context size is " +
                     std::to_string(n_ctx) + " (use -c to raise it)");
  }
}

void prime_sampler(Sampler& sampler, std::span<const int32_t> ctx) {
  const size_t n = std::min(ctx.size(), static_cast<size_t>(sampler.params().repeat_last_n));
  for (int32_t id : ctx.last(n)) sampler.accept(id);
}

namespace {

// Checks new_tokens before any work: not empty, in the vocabulary, fitting the context.
void check_new_tokens(const Forward& fwd, std::span<const int32_t> new_tokens) {
  const int64_t n_new = static_cast<int64_t>(new_tokens.size());
  if (n_new == 0) throw ModelError("empty prompt: nothing to continue from");
  check_prompt_fits(n_new, fwd.n_past(), fwd.n_ctx());
  for (int64_t i = 0; i < n_new; ++i)  // all of them before any work (eval checks per call)
    if (new_tokens[i] < 0 || new_tokens[i] >= fwd.n_vocab())
      throw ModelError("token id " + std::to_string(new_tokens[i]) + " at index " +
                       std::to_string(i) + " is outside the vocabulary [0, " +
                       std::to_string(fwd.n_vocab()) + ")");
}

// Evaluates the prompt in micro-batches of fwd's n_ubatch (the split eval() makes itself), a
// stop check before each; logits (n_vocab,) of its last token. Returns the tokens evaluated:
// fewer than all when stopped, and then fwd is rolled back to where it was.
int64_t eval_prompt(Forward& fwd, std::span<const int32_t> prompt, float* logits,
                    const StopFn& should_stop) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t past0 = fwd.n_past();
  const int64_t ub = fwd.n_ubatch();
  for (int64_t i = 0; i < n; i += ub) {
    if (should_stop && should_stop()) {
      fwd.truncate(past0);
      return i;
    }
    const int64_t nb = std::min(ub, n - i);
    fwd.eval(prompt.data() + i, nb, i + nb == n ? logits : nullptr);
  }
  return n;
}

}  // namespace

// long-function: the one generation loop (prompt in micro-batches, then sample, verify drafts,
// stream and check every finish condition per token), in one place so no caller can drift.
GenerateResult generate(Forward& fwd, const Tokenizer& tok, Sampler& sampler,
                        std::span<const int32_t> new_tokens, const GenerateParams& p,
                        const TextFn& on_text, const StopFn& should_stop) {
  check_new_tokens(fwd, new_tokens);
  const SpecParams& sp = p.spec;
  if (sp.source && (sp.draft_max < 1 || sp.draft_min < 0 || sp.draft_min > sp.draft_max)) {
    throw ModelError(
        "speculative decoding needs 1 <= draft-max and 0 <= draft-min <= draft-max (got " +
        std::to_string(sp.draft_max) + ", " + std::to_string(sp.draft_min) + ")");
  }
  // Drafts per evaluation: a rollback must stay within what sliding-window layers hold.
  const int64_t k_max = sp.source ? std::min<int64_t>(sp.draft_max, fwd.max_rewind()) : 0;
  GenerateResult r;
  GenerateStats& st = r.stats;
  const auto t0 = Clock::now();
  const size_t n_vocab = static_cast<size_t>(fwd.n_vocab());
  std::vector<float> logits(n_vocab * static_cast<size_t>(k_max + 1));  // (k + 1, n_vocab)
  st.prompt_tokens = static_cast<int32_t>(eval_prompt(fwd, new_tokens, logits.data(), should_stop));
  st.prompt_ms = ms_since(t0);
  if (st.prompt_tokens < static_cast<int64_t>(new_tokens.size())) {
    r.finish = FinishReason::kStopped;
    st.total_ms = st.prompt_ms;
    return r;
  }
  for (int32_t id : new_tokens) sampler.accept(id);
  r.prompt_done = true;

  // Decode: sample, stream, check the finish conditions, evaluate the token (and the drafts
  // after it), repeat. Row `row` of logits is the next token's; rows after it follow
  // draft.tokens[row..] (already in the cache).
  std::vector<int32_t> ctx;  // the whole context, for drafting
  if (sp.source) {
    ctx.assign(sp.past.begin(), sp.past.end());
    ctx.insert(ctx.end(), new_tokens.begin(), new_tokens.end());
  }
  Draft draft;
  size_t row = 0;
  int64_t committed = fwd.n_past();
  DraftVerifier verifier(k_max > 0 ? fwd.n_vocab() : 0);
  std::vector<int32_t> batch;
  StreamDecoder decoder(tok);
  StopMatcher matcher(p.stop_strings);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    on_text(s);
  };
  r.finish = FinishReason::kMaxTokens;
  while (p.max_tokens < 0 || st.completion_tokens < p.max_tokens) {
    const auto ts = Clock::now();
    int32_t id;
    {
      ProfScope ps(fwd.profiler(), ProfOp::kSampling);
      const float* l = logits.data() + row * n_vocab;
      id = row < draft.tokens.size() ? verifier.sample(sampler, l, draft.tokens[row], draft.q[row])
                                     : sampler.sample(l);
    }
    st.sample_ms += ms_since(ts);
    if (st.completion_tokens == 0) st.first_token_ms = ms_since(t0);
    sampler.accept_generated(id);
    r.tokens.push_back(id);
    if (sp.source) ctx.push_back(id);
    // The cache without the drafts from this row on (id is the last token, not evaluated).
    committed = fwd.n_past() - static_cast<int64_t>(draft.tokens.size() - row);
    const bool agreed = row < draft.tokens.size() && id == draft.tokens[row];
    if (agreed) ++st.accepted;
    ++st.completion_tokens;
    if (!p.ignore_eog && tok.is_eog(id)) {
      r.finish = FinishReason::kEndOfGeneration;
      break;
    }
    emit(matcher.push(decoder.feed(id)));
    if (matcher.matched()) {
      r.finish = FinishReason::kStopString;
      break;
    }
    if (should_stop && should_stop()) {
      r.finish = FinishReason::kStopped;
      break;
    }
    if (p.max_tokens >= 0 && st.completion_tokens >= p.max_tokens) break;  // needs no eval
    if (agreed) {  // the next row follows id: it is evaluated already
      ++row;
      continue;
    }
    fwd.truncate(committed);  // rejected drafts
    if (fwd.n_past() >= fwd.n_ctx()) {
      r.finish = FinishReason::kContextEnd;
      break;
    }
    // Draft what may follow: no further than the context, max_tokens and the rewind allow.
    draft.clear();
    row = 0;
    int64_t k = std::min<int64_t>(k_max, fwd.n_ctx() - fwd.n_past() - 1);
    if (p.max_tokens >= 0) k = std::min<int64_t>(k, p.max_tokens - st.completion_tokens - 1);
    if (k >= std::max(1, sp.draft_min)) {
      const auto tdr = Clock::now();
      sp.source->propose(ctx, static_cast<int32_t>(k), sampler, draft);
      st.draft_ms += ms_since(tdr);
      if (static_cast<int64_t>(draft.tokens.size()) < std::max(1, sp.draft_min) ||
          static_cast<int64_t>(draft.tokens.size()) > k) {
        draft.clear();
      }
    }
    batch.assign(1, id);
    batch.insert(batch.end(), draft.tokens.begin(), draft.tokens.end());
    const auto td = Clock::now();
    fwd.eval(batch.data(), static_cast<int64_t>(batch.size()), logits.data(),
             !draft.tokens.empty());
    st.decode_ms += ms_since(td);
    ++st.decode_evals;
    st.drafted += static_cast<int32_t>(draft.tokens.size());
  }
  fwd.truncate(committed);  // drafts after the last token
  // End: a dangling partial UTF-8 character and held-back text that was no stop string.
  if (!matcher.matched()) emit(matcher.push(decoder.flush()) + matcher.flush());
  st.total_ms = ms_since(t0);
  return r;
}

}  // namespace hpl
