// Helpers for the runtime tests: an event recorder that checks the per-request protocol
// (queued first, then processing, tokens, exactly one terminal event, nothing after it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace hpl::test {

inline std::string model_path(const char* name) {
  return std::string(HPL_TEST_DATA_DIR) + "/models/" + name;
}

struct RequestLog {
  std::vector<EventType> types;
  std::string text;  // concatenated token pieces
  int terminals = 0;
  bool protocol_ok = true;  // events arrived in a legal order
  std::string protocol_error;
  Event terminal;  // the done / error event (text and outputs cleared)
  std::string error_text;
  std::vector<float> outputs;  // done of an embed / rerank request
  std::chrono::steady_clock::time_point terminal_at;
};

class Recorder {
 public:
  EventCallback callback() {
    return [this](const Event& ev) { on_event(ev); };
  }
  void on_event(const Event& ev) {
    std::lock_guard<std::mutex> lock(mu_);
    RequestLog& r = logs_[ev.id];
    auto bad = [&](const std::string& why) {
      r.protocol_ok = false;
      if (r.protocol_error.empty()) r.protocol_error = why;
    };
    if (r.terminals > 0) bad("event after the terminal event");
    if (r.types.empty() && ev.type != EventType::kQueued) bad("first event is not queued");
    if (ev.type == EventType::kProcessing && !r.types.empty() &&
        r.types.back() != EventType::kQueued)
      bad("processing not right after queued");
    if (ev.type == EventType::kToken) {
      if (r.types.empty() ||
          (r.types.back() != EventType::kProcessing && r.types.back() != EventType::kToken))
        bad("token before processing");
      if (ev.text.empty()) bad("empty token piece");
      r.text += ev.text;
    }
    if (ev.type == EventType::kProcessing) processing_order_.push_back(ev.id);
    r.types.push_back(ev.type);
    if (ev.type == EventType::kDone || ev.type == EventType::kError) {
      ++r.terminals;
      r.terminal = ev;
      r.terminal.text = {};
      r.terminal.outputs = {};
      r.outputs.assign(ev.outputs.begin(), ev.outputs.end());
      if (ev.type == EventType::kError) r.error_text = std::string(ev.text);
      r.terminal_at = std::chrono::steady_clock::now();
      ++n_terminal_;
      cv_.notify_all();
    }
  }
  // Waits until n terminal events in total have arrived (or the timeout).
  bool wait_terminals(size_t n, int seconds = 120) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(seconds), [&] { return n_terminal_ >= n; });
  }
  RequestLog log(RequestId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_[id];
  }
  std::map<RequestId, RequestLog> logs() {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_;
  }
  RequestId last_started() {  // the request that most recently began processing
    std::lock_guard<std::mutex> lock(mu_);
    return processing_order_.empty() ? 0 : processing_order_.back();
  }
  std::vector<RequestId> processing_order() {
    std::lock_guard<std::mutex> lock(mu_);
    return processing_order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<RequestId, RequestLog> logs_;
  std::vector<RequestId> processing_order_;
  size_t n_terminal_ = 0;
};

}  // namespace hpl::test
