// Finds stop strings in streamed generated text. Text that might be the start of a stop
// string is held back until it is known not to be one, so a stop string is never emitted,
// even when it arrives split across tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hpl {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends a piece of generated text; returns the text that is safe to emit now. Once a stop
  // string is found, returns the text before it and matched() is true (drop everything after).
  std::string push(std::string_view piece);
  // The held-back tail, at the end of generation (no stop string matched).
  std::string flush();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace hpl
