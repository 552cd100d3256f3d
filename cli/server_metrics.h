// Counters of `hpl serve` for GET /metrics: requests by outcome, token throughput, and a
// snapshot of queue and memory taken by the caller. Thread-safe (handler threads + worker).
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/runtime_types.h"

namespace hpl::cli {

struct MetricsSnapshot {
  // Filled by the caller at request time.
  size_t queue_length = 0;
  int64_t active = 0;  // requests submitted and not finished
  double model_load_ms = 0;
  double uptime_s = 0;
  size_t weights_bytes = 0, kv_bytes = 0, scratch_bytes = 0, rss_bytes = 0, peak_rss_bytes = 0;
  size_t prompt_cache_bytes = 0, prompt_cache_states = 0;  // saved states (not the live one)
  int64_t n_ctx = 0;
  std::string model;
};

class ServerMetrics {
 public:
  void on_submitted();
  // A request's terminal event: served (done), stopped (client went away), failed (error).
  void on_done(const RequestStats& st, bool client_gone);
  void on_failed();
  void on_rejected();  // refused before submission (4xx)

  int64_t active() const;
  nlohmann::json json(const MetricsSnapshot& s) const;
  std::string prometheus(const MetricsSnapshot& s) const;

 private:
  mutable std::mutex mu_;
  int64_t submitted_ = 0, served_ = 0, stopped_ = 0, failed_ = 0, rejected_ = 0;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  double prefill_s_ = 0, decode_s_ = 0;  // summed time, for aggregate tokens/s
  double last_prefill_tps_ = 0, last_decode_tps_ = 0;
  // Prompt cache: requests that reused a prefix (hit) or none (miss), prompt tokens reused.
  int64_t cache_hits_ = 0, cache_misses_ = 0, cached_tokens_ = 0;
};

// Current resident set size (VmRSS), 0 when /proc is unavailable.
size_t current_rss_bytes();

}  // namespace hpl::cli
