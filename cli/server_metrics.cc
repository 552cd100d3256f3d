#include "cli/server_metrics.h"

#include <fstream>
#include <sstream>

namespace hpl::cli {

void ServerMetrics::on_submitted() {
  std::lock_guard<std::mutex> lock(mu_);
  ++submitted_;
}

void ServerMetrics::on_done(const RequestStats& st, bool client_gone) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(client_gone || st.finish == FinishReason::kStopped ? stopped_ : served_);
  prompt_tokens_ += st.prompt_tokens;
  completion_tokens_ += st.completion_tokens;
  ++(st.cached_tokens > 0 ? cache_hits_ : cache_misses_);
  cached_tokens_ += st.cached_tokens;
  // Recover the phase times from the rates the runtime reports.
  if (st.prefill_tokens_per_s > 0) {
    prefill_s_ += st.prompt_tokens / st.prefill_tokens_per_s;
    last_prefill_tps_ = st.prefill_tokens_per_s;
  }
  if (st.decode_tokens_per_s > 0) {
    decode_s_ += st.completion_tokens / st.decode_tokens_per_s;
    last_decode_tps_ = st.decode_tokens_per_s;
  }
}

void ServerMetrics::on_failed() {
  std::lock_guard<std::mutex> lock(mu_);
  ++failed_;
}

void ServerMetrics::on_rejected() {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_;
}

int64_t ServerMetrics::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return submitted_ - served_ - stopped_ - failed_;
}

nlohmann::json ServerMetrics::json(const MetricsSnapshot& s) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto rate = [](double n, double t) { return t > 0 ? n / t : 0.0; };
  return {
      {"model", s.model},
      {"n_ctx", s.n_ctx},
      {"uptime_s", s.uptime_s},
      {"model_load_ms", s.model_load_ms},
      {"queue_length", s.queue_length},
      {"requests",
       {{"submitted", submitted_},
        {"served", served_},
        {"stopped", stopped_},
        {"failed", failed_},
        {"rejected", rejected_},
        {"active", submitted_ - served_ - stopped_ - failed_}}},
      {"tokens",
       {{"prompt", prompt_tokens_},
        {"completion", completion_tokens_},
        {"prefill_tokens_per_s", rate(static_cast<double>(prompt_tokens_), prefill_s_)},
        {"decode_tokens_per_s", rate(static_cast<double>(completion_tokens_), decode_s_)},
        {"last_prefill_tokens_per_s", last_prefill_tps_},
        {"last_decode_tokens_per_s", last_decode_tps_}}},
      {"prompt_cache",
       {{"hits", cache_hits_},
        {"misses", cache_misses_},
        {"tokens_saved", cached_tokens_},
        {"states", s.prompt_cache_states},
        {"bytes", s.prompt_cache_bytes}}},
      {"memory",
       {{"weights_bytes", s.weights_bytes},
        {"kv_bytes", s.kv_bytes},
        {"scratch_bytes", s.scratch_bytes},
        {"rss_bytes", s.rss_bytes},
        {"peak_rss_bytes", s.peak_rss_bytes}}},
  };
}

std::string ServerMetrics::prometheus(const MetricsSnapshot& s) const {
  const nlohmann::json j = json(s);
  std::ostringstream o;
  auto gauge = [&](const char* name, const char* help, const nlohmann::json& v) {
    o << "# HELP hpl_" << name << ' ' << help << "\n# TYPE hpl_" << name << " gauge\nhpl_" << name
      << ' ' << v.dump() << '\n';
  };
  gauge("model_load_ms", "model load time in milliseconds", j["model_load_ms"]);
  gauge("uptime_seconds", "seconds since the server started", j["uptime_s"]);
  gauge("queue_length", "requests waiting in the FIFO queue", j["queue_length"]);
  for (const char* k : {"submitted", "served", "stopped", "failed", "rejected", "active"})
    gauge((std::string("requests_") + k).c_str(), "requests by outcome", j["requests"][k]);
  for (const char* k : {"prompt", "completion"})
    gauge((std::string("tokens_") + k).c_str(), "tokens processed", j["tokens"][k]);
  for (const char* k : {"prefill_tokens_per_s", "decode_tokens_per_s", "last_prefill_tokens_per_s",
                        "last_decode_tokens_per_s"})
    gauge(k, "throughput in tokens per second", j["tokens"][k]);
  for (const char* k : {"hits", "misses", "tokens_saved", "states", "bytes"})
    gauge((std::string("prompt_cache_") + k).c_str(),
          "prompt cache: requests that reused a prefix or not, prompt tokens reused, saved states",
          j["prompt_cache"][k]);
  for (const char* k :
       {"weights_bytes", "kv_bytes", "scratch_bytes", "rss_bytes", "peak_rss_bytes"})
    gauge((std::string("memory_") + k).c_str(), "memory in bytes", j["memory"][k]);
  return o.str();
}

size_t current_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "N kB"
  return 0;
}

}  // namespace hpl::cli
