// The one generation loop (every caller uses it: `hpl run`, `hpl profile`, `hpl chat`
// through Session, the runtime behind the C API and `hpl serve`). Shaped like llama2.c's
// generate() and gemma.cpp's GenerateT: evaluate the new tokens in micro-batches, then
// sample -> stream -> evaluate one token at a time until a finish reason.
//
// Conventions (see DESIGN.md, "Vocabulary"):
// - Stop checks: should_stop() is asked before every prompt micro-batch (fwd's n_ubatch
//   tokens) and after every generated token. A stop during the prompt rolls fwd back to where
//   it was (the prompt never entered the context).
// - Repeat-penalty window: the last repeat_last_n tokens of the context, prompt included.
//   The loop feeds the sampler the new tokens and every generated one; a caller continuing an
//   earlier context (Session) first feeds it that context's tokens (prime_sampler()).
// - End of generation: an end-of-generation token is sampled, counted in completion_tokens
//   and kept as the last of `tokens` (a session keeps it in its conversation, so the next
//   turn continues after a closed turn); it is never streamed and never evaluated here.
// - Speculative decoding (engine/speculative.h) is a mode of the same loop: each evaluation
//   takes the last sampled token plus the source's drafts (all logits), the following samples
//   come from those rows while they agree with the drafts, and the cache is truncated past the
//   first disagreement. When the loop ends the cache holds the context without the last token,
//   as without speculation.
// - Streamed text is UTF-8-complete (StreamDecoder) and never contains (a prefix of) a stop
//   string; the held-back tail is streamed at the end unless a stop string matched.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

// Why generation ended. The values are the C API's hpl_finish_reason (append only); names
// follow it, and `hpl serve` maps them to OpenAI's finish_reason ("stop": end of generation
// or a stop string; "length": max_tokens or the context end).
enum class FinishReason : int {
  kEndOfGeneration = 0,  // the model sampled an end-of-generation token
  kMaxTokens = 1,        // max_tokens were generated
  kStopString = 2,       // a stop string appeared in the generated text
  kStopped = 3,          // should_stop() said so (the output so far is kept)
  kContextEnd = 4,       // the context filled up while generating
};
// "end_of_generation", "max_tokens", "stop_string", "stopped", "context_end" (the Python
// binding's names).
const char* finish_reason_name(FinishReason r);

// What one generation asks for (OpenAI's request names). Sampling settings live in the
// Sampler the caller passes.
// Speculative decoding: off unless source is set.
struct SpecParams {
  DraftSource* source = nullptr;  // not owned
  int32_t draft_max = 16;         // drafts per evaluation at most (also <= fwd.max_rewind())
  int32_t draft_min = 0;          // fewer drafted than this: evaluate the last token alone
  // The tokens already in fwd's cache (fwd.n_past() of them), which drafting continues.
  std::span<const int32_t> past;
};

struct GenerateParams {
  int32_t max_tokens = 128;               // < 0: until end of generation / context end; 0: none
  std::vector<std::string> stop_strings;  // matched on the generated text; not streamed
  bool ignore_eog = false;  // an end-of-generation token is like any other (benchmarks)
  SpecParams spec;
};

struct GenerateStats {
  int32_t prompt_tokens = 0;      // new tokens evaluated (fewer when stopped during the prompt)
  int32_t completion_tokens = 0;  // tokens sampled (an end-of-generation token included)
  int32_t decode_evals = 0;       // evaluations after the prompt (a token and its drafts)
  int32_t drafted = 0;            // draft tokens evaluated (speculative decoding)
  int32_t accepted = 0;           // of them, sampled by the target too
  double prompt_ms = 0;           // prompt evaluation wall time
  double decode_ms = 0;           // wall time of the decode_evals
  double draft_ms = 0;            // wall time of drafting
  double sample_ms = 0;           // sampling wall time
  double first_token_ms = 0;      // from the start to the first sampled token
  double total_ms = 0;            // from the start to the end
  double prompt_tokens_per_s() const { return rate(prompt_tokens, prompt_ms); }
  double decode_tokens_per_s() const { return rate(decode_evals, decode_ms); }
  double acceptance_rate() const { return drafted > 0 ? double(accepted) / drafted : 0.0; }
  // Tokens after the first over the time after it (drafting, evaluating, sampling): the
  // generation speed a user sees, comparable with and without speculation.
  double effective_tokens_per_s() const {
    return completion_tokens > 1 ? rate(completion_tokens - 1, total_ms - first_token_ms) : 0.0;
  }
  static double rate(double n, double ms) { return ms > 0 ? n * 1e3 / ms : 0.0; }
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (see "End of generation" above)
  std::string text;             // what was streamed
  FinishReason finish = FinishReason::kMaxTokens;
  bool prompt_done = false;  // false: stopped during the prompt (fwd rolled back)
  GenerateStats stats;
};

using TextFn = std::function<void(std::string_view)>;  // gets each streamed piece
using StopFn = std::function<bool()>;                  // true: stop now

// Throws ModelError, before any work, when n_new tokens do not fit after the n_past already
// in the context: "prompt needs N tokens, context size is M".
void check_prompt_fits(int64_t n_new, int64_t n_past, int64_t n_ctx);

// Feeds the sampler's penalty window the last repeat_last_n of ctx (tokens already in the
// context before the new ones).
void prime_sampler(Sampler& sampler, std::span<const int32_t> ctx);

// Continues fwd's context with new_tokens (at least one) and generates. Throws ModelError
// before any work when they are empty or do not fit.
GenerateResult generate(Forward& fwd, const Tokenizer& tok, Sampler& sampler,
                        std::span<const int32_t> new_tokens, const GenerateParams& p,
                        const TextFn& on_text, const StopFn& should_stop = {});

}  // namespace hpl
