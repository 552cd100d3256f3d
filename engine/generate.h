// Text generation on a Forward: prompt prefill, then sample -> stream -> decode one token at
// a time until an end-of-generation token, a stop string, the token limit, the end of the
// context, or the callback says stop. Streamed text is always UTF-8-complete (StreamDecoder)
// and never contains (a prefix of) a stop string.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/forward.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

enum class StopReason { kEndOfGeneration, kStopString, kTokenLimit, kContextFull, kCallback };
const char* stop_reason_name(StopReason r);

struct GenerateParams {
  int32_t n_predict = 128;        // token limit; < 0: until end of generation / context full
  std::vector<std::string> stop;  // stop strings, matched on the generated text (not emitted)
  SamplerParams sampling;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (an end-of-generation token is not included)
  std::string text;             // what was streamed
  StopReason reason = StopReason::kTokenLimit;
  int64_t n_prompt = 0;
  double prompt_s = 0.0;  // prefill wall time
  int64_t n_decode = 0;   // single-token evaluations
  double decode_s = 0.0;  // their wall time
  double sample_s = 0.0;  // sampling wall time
};

// Throws ModelError, before any work, when n_new tokens do not fit after the n_past already
// in the context: "prompt needs N tokens, context size is M".
void check_prompt_fits(int64_t n_new, int64_t n_past, int64_t n_ctx);

// Continues fwd's context with prompt and generates. on_text gets each streamed piece and
// returns false to stop. The sampler's penalty window sees the prompt tokens too.
GenerateResult generate(Forward& fwd, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateParams& p,
                        const std::function<bool(std::string_view)>& on_text);

}  // namespace hpl
