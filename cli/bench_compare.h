// `hpl bench --compare A.json B.json`: tests matched by name (pp512, tg128, pp512 @ d512...)
// and thread count, with B's t/s over A's. Either file may be `hpl bench -o json` or
// llama-bench's `-o json` (an array) or `-o jsonl` (one object per line); both write
// n_prompt, n_gen, n_threads, avg_ts, stddev_ts (llama-bench also n_depth).
#pragma once

#include <string>
#include <vector>

namespace hpl::cli {

struct BenchEntry {
  std::string model;  // model_filename (or model_type when there is none)
  std::string test;   // "pp512", "tg128", "pp512+tg128", with " @ d512" for a depth
  int threads = 0;
  double avg_ts = 0, stddev_ts = 0;
};

// Entries of a result file's text; path is for error messages.
std::vector<BenchEntry> parse_bench_results(const std::string& text, const std::string& path);

// The comparison table (markdown) and the tests found on one side only.
std::string compare_bench(const std::vector<BenchEntry>& a, const std::vector<BenchEntry>& b,
                          const std::string& name_a, const std::string& name_b);

}  // namespace hpl::cli
