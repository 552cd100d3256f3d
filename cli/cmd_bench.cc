// hpl bench: prefill (pp) and decode (tg) throughput like llama-bench. Each test runs once as
// a warm-up and then -r times from an empty context; t/s is the mean over the repetitions of
// tokens / seconds, with its sample standard deviation. Decode also reports the weight bytes
// read per second and that as a percentage of this machine's read bandwidth measured with the
// same thread count; prefill reports matmul GOPS (2 x weight elements per token).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/bench_compare.h"
#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/json_writer.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "kernel/isa.h"
#include "tools/memory_bandwidth.h"

namespace hpl::cli {
namespace {

std::vector<int64_t> int_list(const std::string& opt, const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long x = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || x < 0) {
      throw std::runtime_error(opt + ": bad value '" + item + "' (want N[,N...], N >= 0)");
    }
    v.push_back(x);
  }
  if (v.empty()) throw std::runtime_error(opt + ": empty list");
  return v;
}

struct Result {
  std::string model;
  std::string arch;
  size_t model_bytes = 0;
  uint64_t n_params = 0;
  int64_t n_prompt = 0, n_gen = 0, n_ubatch = 0;
  DType cache_type = DType::F16;
  int threads = 0;
  std::vector<double> samples_ns, samples_ts;
  double avg_ns = 0, stddev_ns = 0, avg_ts = 0, stddev_ts = 0;
  size_t bytes_per_token = 0;
  double gbps = 0;     // decode: weight bytes read per second / 1e9
  double read_bw = 0;  // decode: measured read bandwidth, GB/s
  double pct_bw = 0;   // gbps / read_bw * 100
  double gops = 0;     // prefill: matmul GOPS
  std::string test() const {
    return n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
  }
};

void mean_stddev(const std::vector<double>& x, double* mean, double* sd) {
  double m = 0;
  for (double v : x) m += v;
  m /= static_cast<double>(x.size());
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  *mean = m;
  *sd = x.size() > 1 ? std::sqrt(s / static_cast<double>(x.size() - 1)) : 0.0;
}

uint64_t matmul_elems(const Matrix& m) {
  return m.data ? static_cast<uint64_t>(m.rows) * static_cast<uint64_t>(m.cols) : 0;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  }
  return buf;
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  } else if (n >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f K", n / 1e3);
  }
  return buf;
}

std::string basename(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

void print_md(const std::vector<Result>& rs) {
  std::printf("| model | size | params | backend | threads | test | t/s | GB/s | %% bw | GOPS |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const Result& r : rs) {
    char ts[64], gb[32] = "-", pct[32] = "-", gops[32] = "-";
    std::snprintf(ts, sizeof ts, "%.2f ± %.2f", r.avg_ts, r.stddev_ts);
    if (r.n_gen > 0) {
      std::snprintf(gb, sizeof gb, "%.2f", r.gbps);
      if (r.read_bw > 0) std::snprintf(pct, sizeof pct, "%.1f", r.pct_bw);
    } else {
      std::snprintf(gops, sizeof gops, "%.1f", r.gops);
    }
    std::printf("| %s %s | %s | %s | CPU (%s) | %d | %s | %s | %s | %s | %s |\n",
                basename(r.model).c_str(), r.arch.c_str(), human_bytes(r.model_bytes).c_str(),
                human_count(static_cast<double>(r.n_params)).c_str(), isa_name(), r.threads,
                r.test().c_str(), ts, gb, pct, gops);
  }
  std::fflush(stdout);
}

void print_json(const std::vector<Result>& rs, const std::string& when) {
  JsonWriter j;
  j.begin_array();
  for (const Result& r : rs) {
    j.begin_object();
    j.key("model_filename").str(r.model);
    j.key("model_type").str(r.arch);
    j.key("model_size").num(static_cast<uint64_t>(r.model_bytes));
    j.key("model_n_params").num(r.n_params);
    j.key("backends").str(std::string("CPU (") + isa_name() + ")");
    j.key("n_ubatch").num(r.n_ubatch);
    j.key("type_k").str(kv_type_name(r.cache_type));  // llama-bench's keys
    j.key("type_v").str(kv_type_name(r.cache_type));
    j.key("n_threads").num(r.threads);
    j.key("n_prompt").num(r.n_prompt);
    j.key("n_gen").num(r.n_gen);
    j.key("test_time").str(when);
    j.key("avg_ns").num(static_cast<uint64_t>(std::llround(r.avg_ns)));
    j.key("stddev_ns").num(static_cast<uint64_t>(std::llround(r.stddev_ns)));
    j.key("avg_ts").num(r.avg_ts, 9);
    j.key("stddev_ts").num(r.stddev_ts, 9);
    j.key("samples_ns").begin_array();
    for (double v : r.samples_ns) j.num(static_cast<uint64_t>(std::llround(v)));
    j.end_array();
    j.key("samples_ts").begin_array();
    for (double v : r.samples_ts) j.num(v, 9);
    j.end_array();
    j.key("weight_bytes_per_token").num(static_cast<uint64_t>(r.bytes_per_token));
    if (r.n_gen > 0) {
      j.key("weights_gbps").num(r.gbps, 6);
      j.key("read_bw_gbps").num(r.read_bw, 6);
      j.key("pct_bw").num(r.pct_bw, 6);
    } else {
      j.key("gops").num(r.gops, 6);
    }
    j.end_object();
  }
  j.end_array();
  std::printf("%s\n", j.text().c_str());
  std::fflush(stdout);
}

void print_csv(const std::vector<Result>& rs, const std::string& when) {
  std::printf(
      "model_filename,model_type,model_size,model_n_params,backends,n_ubatch,n_threads,n_prompt,"
      "n_gen,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts,weights_gbps,read_bw_gbps,pct_bw,gops\n");
  for (const Result& r : rs) {
    std::string name = r.model;
    std::string quoted = "\"";
    for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    std::printf(
        "%s,%s,%zu,%llu,CPU (%s),%lld,%d,%lld,%lld,%s,%.0f,%.0f,%.6f,%.6f,%.6f,%.6f,%.3f,%.3f\n",
        quoted.c_str(), r.arch.c_str(), r.model_bytes, static_cast<unsigned long long>(r.n_params),
        isa_name(), static_cast<long long>(r.n_ubatch), r.threads,
        static_cast<long long>(r.n_prompt), static_cast<long long>(r.n_gen), when.c_str(), r.avg_ns,
        r.stddev_ns, r.avg_ts, r.stddev_ts, r.gbps, r.read_bw, r.pct_bw, r.gops);
  }
  std::fflush(stdout);
}

struct BenchArgs {
  std::vector<std::string> models, compare;
  std::vector<int64_t> pp = {512}, tg = {128}, threads;
  ThreadOptions pin;  // --cpus / --cpu-mask (-t takes a list here)
  int64_t reps = 5, ubatch = 256;
  DType cache_type = DType::F16;
  std::string fmt = "md";
  bool warmup = true, bandwidth = true, comparing = false;
};

// false: --help was printed. With --compare, b.compare holds the two files.
bool parse_bench_args(const std::vector<std::string>& args, BenchArgs& b) {
  auto list = [](std::vector<int64_t>& out) {
    return [&out](const std::string& opt, const std::string& v) { out = int_list(opt, v); };
  };
  Options o(
      "usage: hpl bench -m MODEL [-m MODEL2 ...] [options]\n"
      "       hpl bench --compare A.json B.json   (hpl or llama-bench JSON; B/A t/s)");
  o.value({"-m", "--model"}, "MODEL", "a GGUF model (repeatable)",
          [&b](auto&, const std::string& v) { b.models.push_back(v); })
      .value({"-p", "--n-prompt"}, "N[,N...]",
             "prompt sizes for prefill tests (default 512; 0 = none)", list(b.pp))
      .value({"-n", "--n-gen"}, "N[,N...]", "token counts for decode tests (default 128; 0 = none)",
             list(b.tg))
      .value({"-t", "--threads"}, "N[,N...]",
             "thread counts (default: the CPU topology's, see hpl info --cpu)", list(b.threads));
  b.pin.add_to(o, /*threads_too=*/false);
  o.number({"-r", "--repetitions"}, "N", "repetitions per test (default 5)", b.reps)
      .text({"-o", "--output"}, "md|json|csv", "output format (default md)", b.fmt)
      .number({"-ub", "--ubatch"}, "N", "prefill micro-batch (default 256)", b.ubatch);
  add_cache_type_option(o, b.cache_type);
  o.flag({"--no-warmup"}, "skip the warm-up run of each test", b.warmup, false)
      .flag({"--no-bandwidth"}, "skip the read-bandwidth measurement", b.bandwidth, false)
      .flag({"--compare"}, "compare two bench JSON files given as arguments", b.comparing)
      .positional(b.compare);
  if (!o.parse(args)) return false;
  if (b.comparing || !b.compare.empty()) {
    if (!b.comparing) o.fail("unexpected argument '" + b.compare[0] + "'");
    if (b.compare.size() != 2 || !b.models.empty())
      o.fail("--compare takes two files: A.json B.json");
    return true;
  }
  if (b.models.empty()) o.fail("-m MODEL is required");
  if (b.fmt != "md" && b.fmt != "json" && b.fmt != "csv")
    throw std::runtime_error("-o: want md, json or csv, got '" + b.fmt + "'");
  if (b.reps < 1 || b.reps > 100000) throw std::runtime_error("-r: must be in [1, 100000]");
  if (b.ubatch < 1) throw std::runtime_error("-ub: must be >= 1");
  if (b.threads.empty()) b.threads = {default_threads(b.pin.cpus)};
  for (int64_t t : b.threads)
    if (t < 1 || t > 256) throw std::runtime_error("-t: thread counts must be in [1, 256]");
  b.pp.erase(std::remove(b.pp.begin(), b.pp.end(), 0), b.pp.end());
  b.tg.erase(std::remove(b.tg.begin(), b.tg.end(), 0), b.tg.end());
  if (b.pp.empty() && b.tg.empty()) throw std::runtime_error("nothing to run: -p and -n are all 0");
  return true;
}

// One model's sizes, which every result row and throughput figure of it uses.
struct ModelFacts {
  uint64_t n_params = 0;
  uint64_t layer_elems = 0;  // weights of the layers' matmuls
  uint64_t out_elems = 0;    // weights of the output matmul
  size_t bytes_per_token = 0;
};

ModelFacts model_facts(const Model& model) {
  ModelFacts f;
  for (const auto& t : model.file->tensors()) f.n_params += static_cast<uint64_t>(t.n_elements());
  for (const LayerWeights& L : model.weights.layers)
    f.layer_elems += matmul_elems(L.wq) + matmul_elems(L.wk) + matmul_elems(L.wv) +
                     matmul_elems(L.wo) + matmul_elems(L.gate) + matmul_elems(L.up) +
                     matmul_elems(L.down);
  f.out_elems = matmul_elems(model.weights.output);
  f.bytes_per_token = weight_bytes_per_token(model.weights);
  return f;
}

// Times one test into r: a prefill of n_prompt tokens, or n_gen single-token decodes, from an
// empty cache each repetition. read_bw: GB/s measured on fwd's pool (decode's % of it).
void time_test(Forward& fwd, const BenchArgs& b, const ModelFacts& mf,
               const std::vector<int32_t>& ids, double read_bw, Result& r) {
  std::vector<float> logits(static_cast<size_t>(fwd.n_vocab()));
  auto once = [&]() {
    fwd.reset();
    auto t0 = std::chrono::steady_clock::now();
    if (r.n_prompt > 0) {
      fwd.eval(ids.data(), r.n_prompt, logits.data());
    } else {
      for (int64_t i = 0; i < r.n_gen; ++i)
        fwd.eval(&ids[static_cast<size_t>(i)], 1, logits.data());
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  if (b.warmup) once();
  const double n = static_cast<double>(r.n_prompt > 0 ? r.n_prompt : r.n_gen);
  for (int64_t i = 0; i < b.reps; ++i) {
    const double s = once();
    r.samples_ns.push_back(s * 1e9);
    r.samples_ts.push_back(n / s);
  }
  mean_stddev(r.samples_ns, &r.avg_ns, &r.stddev_ns);
  mean_stddev(r.samples_ts, &r.avg_ts, &r.stddev_ts);
  if (r.n_gen > 0) {
    r.gbps = static_cast<double>(mf.bytes_per_token) * r.avg_ts / 1e9;
    r.read_bw = read_bw;
    r.pct_bw = read_bw > 0 ? 100.0 * r.gbps / read_bw : 0.0;
  } else {
    const double ops =
        2.0 * (static_cast<double>(mf.layer_elems) * n + static_cast<double>(mf.out_elems));
    r.gops = ops / (r.avg_ns * 1e-9) / 1e9;
  }
}

// Every test of one model at every thread count, appended to results.
void bench_model(const std::string& path, const BenchArgs& b, std::vector<Result>& results) {
  auto model = Model::load(path);
  const ModelFacts mf = model_facts(*model);
  int64_t n_ctx = 1;
  for (int64_t p : b.pp) n_ctx = std::max(n_ctx, p);
  for (int64_t n : b.tg) n_ctx = std::max(n_ctx, n);
  std::mt19937 rng(42);
  std::vector<int32_t> ids(static_cast<size_t>(n_ctx));
  for (auto& id : ids)
    id = static_cast<int32_t>(rng() % static_cast<uint32_t>(model->config.n_vocab));

  for (int64_t nt : b.threads) {
    ForwardOptions fo;
    fo.n_ctx = n_ctx;
    fo.n_ubatch = b.ubatch;
    fo.cache_type = b.cache_type;
    fo.n_threads = static_cast<int>(nt);
    fo.cpus = b.pin.cpus;
    Forward fwd(*model, fo);
    warn_if_not_pinned(fwd.pool());
    double read_bw = 0;
    if (b.bandwidth && !b.tg.empty()) read_bw = measure_read_bandwidth(fwd.pool()) / 1e9;
    auto run_test = [&](int64_t n_prompt, int64_t n_gen) {
      Result r;
      r.model = path;
      r.arch = arch_name(model->config.arch);
      r.model_bytes = model->file->file_size();
      r.n_params = mf.n_params;
      r.n_prompt = n_prompt;
      r.n_gen = n_gen;
      r.n_ubatch = b.ubatch;
      r.cache_type = b.cache_type;
      r.threads = static_cast<int>(nt);
      r.bytes_per_token = mf.bytes_per_token;
      time_test(fwd, b, mf, ids, read_bw, r);
      if (b.fmt != "md")
        std::fprintf(stderr, "%s %s t=%lld: %.2f ± %.2f t/s\n", basename(path).c_str(),
                     r.test().c_str(), static_cast<long long>(nt), r.avg_ts, r.stddev_ts);
      results.push_back(std::move(r));
    };
    for (int64_t p : b.pp) run_test(p, 0);
    for (int64_t n : b.tg) run_test(0, n);
  }
}

int run_bench(const std::vector<std::string>& args) {
  BenchArgs b;
  if (!parse_bench_args(args, b)) return 0;
  if (b.comparing) {
    std::printf("%s", compare_bench(parse_bench_results(read_text_file(b.compare[0]), b.compare[0]),
                                    parse_bench_results(read_text_file(b.compare[1]), b.compare[1]),
                                    b.compare[0], b.compare[1])
                          .c_str());
    return 0;
  }
  char when[32];
  std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::vector<Result> results;
  for (const std::string& path : b.models) bench_model(path, b, results);
  if (b.fmt == "md") {
    print_md(results);
  } else if (b.fmt == "json") {
    print_json(results, when);
  } else {
    print_csv(results, when);
  }
  return 0;
}

}  // namespace

HPL_COMMAND("bench", "prefill / decode throughput like llama-bench (md, json, csv)", run_bench);

}  // namespace hpl::cli
