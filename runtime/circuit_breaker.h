// Circuit breaker for the runtime: after `threshold` consecutive failed requests the runtime
// enters a failed state and refuses work, naming the last failure, until reset(). A request
// that ends normally (done, including stopped) closes the count. Not thread-safe: the runtime
// guards it with its own mutex.
#pragma once

#include <string>

namespace hpl {

class CircuitBreaker {
 public:
  explicit CircuitBreaker(int threshold = 3) : threshold_(threshold < 1 ? 1 : threshold) {}

  void record_success() { consecutive_ = 0; }
  void record_failure(const std::string& reason) {
    last_reason_ = reason;
    if (++consecutive_ >= threshold_) open_ = true;
  }
  void reset() {
    consecutive_ = 0;
    open_ = false;
    last_reason_.clear();
  }

  bool is_open() const { return open_; }
  int consecutive_failures() const { return consecutive_; }
  int threshold() const { return threshold_; }
  // "failed state after 3 consecutive failed requests; last: <reason>"
  std::string open_reason() const {
    return "runtime is in a failed state after " + std::to_string(consecutive_) +
           " consecutive failed requests (reset it to continue); last error: " + last_reason_;
  }

 private:
  int threshold_;
  int consecutive_ = 0;
  bool open_ = false;
  std::string last_reason_;
};

}  // namespace hpl
