// Small helpers shared by the run / chat / bench / profile / perplexity / serve subcommands:
// option values, sampler and thread options (one spelling for all), files.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cli/options.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/grammar_constraint.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "kernel/cpu_topology.h"
#include "kernel/thread_pool.h"
#include "runtime/request_checks.h"
#include "tokenizer/chat_template.h"

namespace hpl::cli {

// The whole file; throws naming the path when it is missing, a directory or unreadable.
inline std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(path + ": is a directory, not a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return text;
}

// The chat format, by one rule for hpl chat, run --chat and serve: the NAME given with
// `option` (--template / --chat-template), else the one the GGUF names (tokenizer.chat_template,
// or turn-marker special tokens such as <start_of_turn>). No guess by architecture: a model
// with neither has no chat format, and this throws naming the option.
inline ChatTemplate chat_template_for(const Vocab& vocab, const std::string& name,
                                      const std::string& option) {
  if (name.empty() && detect_chat_family(vocab) == ChatFamily::UNKNOWN)
    throw std::runtime_error(
        "the model has no chat template (no tokenizer.chat_template, no turn-marker tokens); "
        "name one with " +
        option + " (gemma, chatml, llama2, llama3, command-r, zephyr)");
  return ChatTemplate::for_vocab(vocab, name);
}

// Decode threads when -t is not given: the CPU topology's default (kernel/cpu_topology.h),
// over the pinned CPUs when there are any.
inline int default_threads(const std::vector<int>& cpus = {}) {
  return kernel::default_thread_count(cpus);
}

// -t / --threads N, --cpus LIST, --cpu-mask HEX.
struct ThreadOptions {
  int n_threads = 0;      // 0: default_threads(cpus)
  std::vector<int> cpus;  // pin to these (empty: no pinning)

  // Adds -t / --threads (unless threads_too is false: bench takes a list), --cpus, --cpu-mask.
  void add_to(Options& o, bool threads_too = true) {
    if (threads_too)
      o.value({"-t", "--threads"}, "N",
              "threads (default: the CPU topology's, see `hpl info --cpu`)",
              [this](const std::string& opt, const std::string& v) {
                const int64_t x = to_int(opt, v);
                if (x < 1 || x > 256) throw std::runtime_error(opt + ": must be in [1, 256]");
                n_threads = static_cast<int>(x);
              });
    auto pin = [this](const std::string& opt, const std::string& v) {
      try {
        cpus = opt == "--cpus" ? kernel::parse_cpu_list(v) : kernel::parse_cpu_mask(v);
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(opt + ": " + e.what());
      }
    };
    o.value({"--cpus"}, "LIST", "pin the threads to these CPUs, e.g. 4-7 or 0,2-3", pin);
    o.value({"--cpu-mask"}, "HEX", "the same as a bit mask, e.g. 0xf0", pin);
  }
  int threads() const { return n_threads > 0 ? n_threads : default_threads(cpus); }
  // Sets fo's threads and pinning.
  void apply(ForwardOptions& fo) const {
    fo.n_threads = threads();
    fo.cpus = cpus;
  }
};

// Pinning the OS refused or narrowed is never silent: a warning naming the CPUs.
inline void warn_if_not_pinned(const kernel::ThreadPool& pool) {
  const std::string w = pool.pin_warning();
  if (!w.empty()) std::fprintf(stderr, "warning: pinning: %s\n", w.c_str());
}

// --verbose: the CPU topology and the threads in use.
inline void print_cpu_setup(const kernel::ThreadPool& pool, const std::vector<int>& cpus) {
  std::fprintf(stderr, "%s", kernel::describe_cpu_topology(kernel::host_cpu_topology()).c_str());
  std::fprintf(stderr, "using %d threads%s%s\n", pool.size(),
               cpus.empty() ? "" : ", pinned to CPUs ", kernel::format_cpu_list(cpus).c_str());
}

// Checks -c / -t values the way `hpl run` does.
inline void check_ctx_threads(int64_t n_ctx, int n_threads) {
  if (n_ctx < 1 || n_ctx > (int64_t{1} << 24)) throw std::runtime_error("-c: out of range");
  if (n_threads < 1 || n_threads > 256) throw std::runtime_error("-t: must be in [1, 256]");
}

// The option's integer value, which must fit an int32_t.
inline int32_t to_int32(const std::string& opt, const std::string& v) {
  const int64_t x = to_int(opt, v);
  if (x < INT32_MIN || x > INT32_MAX) throw std::runtime_error(opt + ": out of range: '" + v + "'");
  return static_cast<int32_t>(x);
}

// Refuses text that is not valid UTF-8 (runtime/request_checks.h: the C API's and the
// server's rule), naming what it is and the byte offset.
inline void require_utf8(std::string_view text, const std::string& what) {
  if (auto p = check_utf8(text, what)) throw std::runtime_error(p->message);
}

// -n N: a token limit checked like the C API's max_tokens, except that -1 means none (until
// the end of generation or of the context) and 0 only evaluates the prompt.
inline int32_t parse_token_limit(const std::string& opt, const std::string& v) {
  const int64_t n = to_int(opt, v);
  if (n == -1 || n == 0) return static_cast<int32_t>(n);
  if (auto p = check_max_tokens(n))
    throw std::runtime_error(opt + ": " + p->message + " (or -1: no limit; 0: prompt only)");
  return static_cast<int32_t>(n);
}

// --grammar-file FILE, --json-schema FILE, --json: constrained output (at most one).
inline void add_format_options(Options& o, OutputFormat& f) {
  o.value({"--grammar-file"}, "FILE",
          "output must match the GBNF grammar in FILE (root rule 'root')",
          [&f](auto&, const std::string& v) { f.grammar = read_text_file(v); });
  o.value({"--json-schema"}, "FILE", "output must be JSON valid against the JSON Schema in FILE",
          [&f](auto&, const std::string& v) { f.json_schema = read_text_file(v); });
  o.flag({"--json"}, "output must be a JSON object", f.json);
}

// Compiles the format once before any model work: a bad grammar or schema fails fast with
// its line:column or JSON pointer.
inline void require_format(const OutputFormat& f) {
  const int n = !f.grammar.empty() + !f.json_schema.empty() + f.json;
  if (n > 1) throw std::runtime_error("give only one of --grammar-file, --json-schema and --json");
  if (auto p = check_format(f))
    throw std::runtime_error((p->field == "grammar" ? "--grammar-file" : "--json-schema") +
                             p->message.substr(p->field.size()));
}

// --cache-type T: the KV cache row type (engine/kv_cache.h), the same option everywhere.
inline void add_cache_type_option(Options& o, DType& out, const char* help = nullptr) {
  o.value({"--cache-type"}, "T",
          help ? help : "KV cache type: f16 (default), f32, q8_0 (about half of f16), q4_0",
          [&out](const std::string& opt, const std::string& v) {
            if (!kv_type_from_name(v, &out))
              throw std::runtime_error(opt + ": unknown KV cache type '" + v +
                                       "' (f16, f32, q8_0, q4_0)");
          });
}

// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --seed, each
// checked as it is parsed with the C API's ranges and messages ("--temp: temperature must be
// in [0, 2], got -1").
inline void add_sampler_options(Options& o, SamplerParams& sp, bool& have_seed) {
  // Earlier options were checked when they were parsed: a problem is this option's.
  auto checked = [&sp](auto set) {
    return [&sp, set](const std::string& opt, const std::string& v) {
      set(opt, v);
      if (auto p = check_sampling(sp)) throw std::runtime_error(opt + ": " + p->message);
    };
  };
  o.value({"--temp"}, "T", "temperature in [0, 2] (default 0.8; 0 = greedy, deterministic)",
          checked([&sp](auto& opt, auto& v) { sp.temp = to_float(opt, v); }));
  o.value({"--top-k"}, "K", "keep the K most likely tokens (default 40; 0 = off)",
          checked([&sp](auto& opt, auto& v) { sp.top_k = to_int32(opt, v); }));
  o.value({"--top-p"}, "P", "nucleus sampling, in (0, 1] (default 0.95; 1 = off)",
          checked([&sp](auto& opt, auto& v) { sp.top_p = to_float(opt, v); }));
  o.value({"--min-p"}, "P",
          "drop tokens below P x the best probability, P in [0, 1] (default 0.05)",
          checked([&sp](auto& opt, auto& v) { sp.min_p = to_float(opt, v); }));
  o.value({"--repeat-penalty"}, "R", "penalize the last N tokens, R in (0, 10] (default 1.0 = off)",
          checked([&sp](auto& opt, auto& v) { sp.repeat_penalty = to_float(opt, v); }));
  o.value({"--repeat-last-n"}, "N",
          "window: the last N tokens, prompt included (default 64; 0 = off)",
          checked([&sp](auto& opt, auto& v) { sp.repeat_last_n = to_int32(opt, v); }));
  o.value({"-s", "--seed"}, "S", "random seed (default: random)",
          checked([&sp, &have_seed](auto& opt, auto& v) {
            sp.seed = static_cast<uint64_t>(to_int(opt, v));
            have_seed = true;
          }));
}

// --draft MODEL, --draft-max N, --draft-min N, --lookup N (speculative decoding).
inline void add_spec_options(Options& o, SpecOptions& so) {
  o.text({"--draft"}, "MODEL",
         "speculative decoding: draft with this smaller model (same vocabulary)", so.draft_path)
      .value({"--lookup"}, "N",
             "speculative decoding: draft by prompt lookup, n-grams up to N (e.g. 3)",
             [&so](const std::string& opt, const std::string& v) {
               so.lookup = to_int32(opt, v);
               if (so.lookup < 1 || so.lookup > 64)
                 throw std::runtime_error(opt + ": must be in [1, 64]");
             })
      .value({"--draft-max"}, "N", "tokens drafted per step at most (default 16)",
             [&so](const std::string& opt, const std::string& v) {
               so.draft_max = to_int32(opt, v);
               if (so.draft_max < 1 || so.draft_max > 256)
                 throw std::runtime_error(opt + ": must be in [1, 256]");
             })
      .value({"--draft-min"}, "N", "fewer drafted than N: not verified (default 0)",
             [&so](const std::string& opt, const std::string& v) {
               so.draft_min = to_int32(opt, v);
               if (so.draft_min < 0 || so.draft_min > 256)
                 throw std::runtime_error(opt + ": must be in [0, 256]");
             });
}

// --verbose: speculative decoding's drafts, acceptance and the effective speed.
inline void print_spec_stats(const GenerateStats& st) {
  std::fprintf(stderr,
               "speculative: %d drafted, %d accepted (%.1f%%), drafting %.1f ms, %d target evals; "
               "effective %.2f tok/s\n",
               st.drafted, st.accepted, 100.0 * st.acceptance_rate(), st.draft_ms, st.decode_evals,
               st.effective_tokens_per_s());
}

}  // namespace hpl::cli
