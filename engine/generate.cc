#include "engine/generate.h"

#include <chrono>
#include <string>

#include "engine/stop_matcher.h"

namespace hpl {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kEndOfGeneration:
      return "end of generation";
    case StopReason::kStopString:
      return "stop string";
    case StopReason::kTokenLimit:
      return "token limit";
    case StopReason::kContextFull:
      return "context full";
    case StopReason::kCallback:
      return "stopped";
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

GenerateResult generate(Forward& fwd, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateParams& p,
                        const std::function<bool(std::string_view)>& on_text) {
  using clock = std::chrono::steady_clock;
  GenerateResult r;
  r.n_prompt = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) throw ModelError("empty prompt: nothing to continue from");
  check_prompt_fits(r.n_prompt, fwd.n_past(), fwd.n_ctx());

  Sampler sampler(p.sampling, fwd.n_vocab());
  for (int32_t id : prompt) sampler.accept(id);
  StreamDecoder decoder(tok);
  StopMatcher stops(p.stop);
  std::vector<float> logits(static_cast<size_t>(fwd.n_vocab()));

  auto t0 = clock::now();
  fwd.eval(prompt.data(), r.n_prompt, logits.data());
  r.prompt_s = seconds_since(t0);

  auto emit = [&](const std::string& s) {
    if (s.empty()) return true;
    r.text += s;
    return on_text(s);
  };
  while (true) {
    if (p.n_predict >= 0 && static_cast<int64_t>(r.tokens.size()) >= p.n_predict) {
      r.reason = StopReason::kTokenLimit;
      break;
    }
    auto ts = clock::now();
    const int32_t id = sampler.sample(logits.data());
    r.sample_s += seconds_since(ts);
    if (tok.is_eog(id)) {
      r.reason = StopReason::kEndOfGeneration;
      break;
    }
    sampler.accept(id);
    r.tokens.push_back(id);
    if (!emit(stops.push(decoder.feed(id)))) {
      r.reason = StopReason::kCallback;
      return r;
    }
    if (stops.matched()) {
      r.reason = StopReason::kStopString;
      return r;
    }
    if (p.n_predict >= 0 && static_cast<int64_t>(r.tokens.size()) >= p.n_predict) {
      r.reason = StopReason::kTokenLimit;
      break;  // the last token needs no evaluation
    }
    if (fwd.n_past() >= fwd.n_ctx()) {
      r.reason = StopReason::kContextFull;
      break;
    }
    auto td = clock::now();
    fwd.eval(&id, 1, logits.data());
    r.decode_s += seconds_since(td);
    ++r.n_decode;
  }
  // End: a dangling partial UTF-8 character and held-back text that was no stop string.
  std::string tail = stops.push(decoder.flush());
  if (!stops.matched()) tail += stops.flush();
  emit(tail);
  return r;
}

}  // namespace hpl
