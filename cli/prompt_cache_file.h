// --prompt-cache FILE of `hpl run` and `hpl chat`: the KV of a prompt's prefix kept in a file
// (runtime/session_file.h format, sliding-window layers whole), so the next run with a prompt
// that starts the same way skips evaluating it. The file is checked against the model (another
// model's file is an error naming both fingerprints) and its tokens against the prompt: only
// the prefix they share is reused, and a file that holds less than the prompt is rewritten.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "engine/forward.h"
#include "runtime/session_file.h"

namespace hpl::cli {

// Loads FILE (when it exists) into fwd and keeps the KV of the longest prefix of ids it holds
// and can be rewound to (all of ids but the last token at most). Returns the tokens kept.
int64_t load_prompt_cache(Forward& fwd, const LoadedModelInfo& m, std::span<const int32_t> ids,
                          const std::string& file);

// When fwd holds fewer than all but the last of ids (the first fwd.n_past() of which it holds),
// evaluates up to there and writes them to FILE. Returns the tokens saved (0: nothing to do).
int64_t save_prompt_cache(Forward& fwd, const LoadedModelInfo& m, std::span<const int32_t> ids,
                          const std::string& file);

}  // namespace hpl::cli
