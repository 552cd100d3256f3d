#include "cli/profile_trace.h"

#include <algorithm>
#include <set>

#include "cli/json_writer.h"

namespace hpl::cli {

namespace {

void complete_event(JsonWriter& j, const std::string& name, const char* cat, int tid, int64_t t0,
                    int64_t t1, int64_t origin) {
  j.key("name").str(name);
  j.key("cat").str(cat);
  j.key("ph").str("X");
  j.key("pid").num(1);
  j.key("tid").num(tid);
  j.key("ts").num(static_cast<double>(t0 - origin) / 1e3, 17);  // microseconds
  j.key("dur").num(static_cast<double>(t1 - t0) / 1e3, 17);
}

}  // namespace

std::string chrome_trace_json(const std::vector<const PhaseRun*>& phases, const char* isa) {
  int64_t origin = INT64_MAX;
  std::set<int> threads;
  for (const PhaseRun* ph : phases) {
    origin = std::min(origin, ph->t0_ns);
    threads.insert(ph->thread);
    for (const ProfSlice& s : ph->slices) threads.insert(s.thread);
  }
  if (origin == INT64_MAX) origin = 0;
  JsonWriter j;
  j.begin_object();
  j.key("displayTimeUnit").str("ns");
  j.key("traceEvents").begin_array();
  for (int t : threads) {
    j.begin_object();
    j.key("name").str("thread_name");
    j.key("ph").str("M");
    j.key("pid").num(1);
    j.key("tid").num(t);
    j.key("args").begin_object().key("name").str("thread " + std::to_string(t)).end_object();
    j.end_object();
  }
  for (const PhaseRun* ph : phases) {
    j.begin_object();
    std::string name = ph->name;
    if (ph->name == "decode") name += " @" + std::to_string(ph->depth);
    complete_event(j, name, "phase", ph->thread, ph->t0_ns, ph->t1_ns, origin);
    j.key("args").begin_object();
    j.key("n_tokens").num(ph->n_tokens);
    j.key("depth").num(ph->depth);
    j.end_object();
    j.end_object();
    for (const ProfSlice& s : ph->slices) {
      j.begin_object();
      if (s.is_layer) {
        complete_event(j, "layer " + std::to_string(s.layer), "layer", s.thread, s.t0_ns, s.t1_ns,
                       origin);
        j.key("args").begin_object().key("layer").num(s.layer).end_object();
      } else {
        const char* role = prof_op_name(s.op);
        complete_event(j, role, prof_op_is_matmul(s.op) ? "matmul" : role, s.thread, s.t0_ns,
                       s.t1_ns, origin);
        j.key("args").begin_object();
        j.key("role").str(role);
        j.key("layer").num(s.layer);
        j.key("isa").str(isa);
        if (s.shape.type) {
          j.key("type").str(s.shape.type);
          j.key("shape").str(std::to_string(s.shape.rows) + "x" + std::to_string(s.shape.cols) +
                             " @ " + std::to_string(s.shape.ntok) + " tok");
          j.key("rows").str(std::to_string(s.shape.r0) + ".." + std::to_string(s.shape.r1));
        }
        j.end_object();
      }
      j.end_object();
    }
  }
  j.end_array();
  j.end_object();
  return j.text();
}

}  // namespace hpl::cli
