// hpl run -m MODEL -p PROMPT [options]: generates a continuation (or, with --chat/--system, a
// chat reply) and streams it to stdout as it is produced; logs and timings go to stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/prompt_cache_file.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/grammar_constraint.h"
#include "engine/memory_report.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "kernel/ops.h"
#include "runtime/model_identity.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace hpl::cli {
namespace {

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  std::string tok;
  while (in >> tok) {
    char* end = nullptr;
    long v = std::strtol(tok.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX)
      throw std::runtime_error("--ids: bad id '" + tok + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw std::runtime_error("--ids: no token ids given");
  return ids;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct RunArgs {
  std::string model_path, prompt, prompt_file, ids_text, system, template_name;
  std::string dump_logits, dump_ids, prompt_cache;
  bool have_prompt = false, have_ids = false, chat = false, verbose = false;
  ThreadOptions th;
  bool have_seed = false, have_ctx = false;
  GenerateParams gp;
  SamplerParams sp;
  OutputFormat format;
  ForwardOptions fo;
  SpecOptions spec;
};

// false: --help was printed.
bool parse_run_args(const std::vector<std::string>& args, RunArgs& r) {
  Options o("usage: hpl run -m MODEL.gguf (-p PROMPT | -f FILE | --ids \"1 2 3\") [options]");
  auto set_ctx = [&r](const std::string& opt, const std::string& v) {
    r.fo.n_ctx = to_int(opt, v);
    r.have_ctx = true;
  };
  o.text({"-m", "--model"}, "MODEL", "the GGUF model", r.model_path)
      .value({"-p", "--prompt"}, "PROMPT", "the prompt text",
             [&r](auto&, const std::string& v) {
               r.prompt = v;
               r.have_prompt = true;
             })
      .text({"-f", "--file"}, "FILE", "read the prompt from FILE", r.prompt_file)
      .value({"--ids"}, "\"1 2 3\"", "the prompt as token ids",
             [&r](auto&, const std::string& v) {
               r.ids_text = v;
               r.have_ids = true;
             })
      .value({"-n", "--n-predict"}, "N",
             "tokens to generate (default 128; -1: until end of generation)",
             [&r](const std::string& opt, const std::string& v) {
               r.gp.max_tokens = parse_token_limit(opt, v);
             })
      .value({"-c", "--ctx-size"}, "N",
             "context size in tokens (default 2048, at most the model's)", set_ctx);
  add_sampler_options(o, r.sp, r.have_seed);
  add_spec_options(o, r.spec);
  add_format_options(o, r.format);
  o.note("  (sampling ranges and UTF-8 text are checked like the C API's and the server's)")
      .value({"--stop"}, "TEXT", "stop when TEXT is generated (repeatable; not printed)",
             [&r](auto&, const std::string& v) { r.gp.stop_strings.push_back(v); })
      .flag({"--chat"}, "format the prompt as a user turn with the model's chat template", r.chat)
      .value({"--system"}, "TEXT", "system message (implies --chat)",
             [&r](auto&, const std::string& v) {
               r.system = v;
               r.chat = true;
             })
      .value({"--chat-template"}, "NAME",
             "override the template family (gemma, chatml, llama2, llama3, ...)",
             [&r](auto&, const std::string& v) {
               r.template_name = v;
               r.chat = true;
             })
      .number({"--ubatch", "-ub"}, "N", "prefill micro-batch in tokens (default 256)",
              r.fo.n_ubatch);
  add_cache_type_option(o, r.fo.cache_type);
  o.text({"--prompt-cache"}, "FILE",
         "reuse the prompt's prefix KV saved in FILE by an earlier run (same model), and save "
         "this prompt's there",
         r.prompt_cache)
      .flag({"--verbose", "-v"}, "model info, load time, prompt and decode tok/s, memory",
            r.verbose)
      .text({"--dump-logits"}, "FILE", Options::kHidden, r.dump_logits)  // f32 (n_prompt, n_vocab)
      .text({"--dump-ids"}, "FILE", Options::kHidden, r.dump_ids);       // generated ids
  r.th.add_to(o);
  if (!o.parse(args)) return false;
  if (r.model_path.empty()) o.fail("-m MODEL is required");
  if (!r.prompt_file.empty()) {
    r.prompt = read_text_file(r.prompt_file);
    r.have_prompt = true;
  }
  if (r.have_prompt == r.have_ids) o.fail("give exactly one of -p PROMPT, -f FILE or --ids");
  if (r.have_ids && r.chat)
    throw std::runtime_error("--ids cannot be combined with --chat/--system");
  require_utf8(r.prompt, r.prompt_file.empty() ? "prompt" : "prompt (" + r.prompt_file + ")");
  require_utf8(r.system, "--system");
  for (size_t i = 0; i < r.gp.stop_strings.size(); ++i)
    require_utf8(r.gp.stop_strings[i], "--stop value " + std::to_string(i + 1));
  require_format(r.format);
  r.th.apply(r.fo);
  check_ctx_threads(r.fo.n_ctx, r.fo.n_threads);
  if (r.fo.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  r.spec.check();
  r.spec.apply(r.fo);
  if (!r.have_seed) r.sp.seed = std::random_device{}();
  return true;
}

// The prompt's ids: given, or the text (as a chat turn with --chat, which also stops at the
// template's end of turn).
std::vector<int32_t> prompt_ids(RunArgs& r, const Tokenizer& tok) {
  if (r.have_ids) return parse_ids(r.ids_text);
  if (!r.chat) return tok.encode(r.prompt, true, true);
  ChatTemplate tmpl = chat_template_for(tok.vocab(), r.template_name, "--chat-template");
  std::vector<ChatMessage> msgs;
  if (!r.system.empty()) msgs.push_back({"system", r.system});
  msgs.push_back({"user", r.prompt});
  r.gp.stop_strings.push_back(tmpl.end_of_turn());
  return tok.encode(tmpl.format(msgs, true), true, true);
}

void print_model_info(const RunArgs& r, const Model& model, size_t n_ids, double load_s) {
  const ModelConfig& cfg = model.config;
  std::fprintf(stderr,
               "model: %s (%s, %lld layers, n_embd %lld, %lld heads / %lld kv, vocab %lld)\n"
               "run: %d threads (%s), context %lld, ubatch %lld, seed %llu, %zu prompt tokens\n"
               "load: %.0f ms\n",
               r.model_path.c_str(), arch_name(cfg.arch), static_cast<long long>(cfg.n_layer),
               static_cast<long long>(cfg.n_embd), static_cast<long long>(cfg.n_head),
               static_cast<long long>(cfg.n_head_kv), static_cast<long long>(cfg.n_vocab),
               r.fo.n_threads, isa_name(), static_cast<long long>(r.fo.n_ctx),
               static_cast<long long>(r.fo.n_ubatch), static_cast<unsigned long long>(r.sp.seed),
               n_ids, load_s * 1e3);
  for (const auto& c : model.weights.converted) std::fprintf(stderr, "converted: %s\n", c.c_str());
  if (!model.weights.packed.empty()) {
    std::fprintf(stderr, "packed at load: %zu matrices, %.1f MiB (e.g. %s)\n",
                 model.weights.packed.size(), model.weights.packed_bytes / 1048576.0,
                 model.weights.packed.front().c_str());
  }
  if (model.weights.prepacked_bytes > 0) {
    std::fprintf(stderr,
                 "packed file: %.1f MiB of matrices used packed in place from the mapping\n",
                 model.weights.prepacked_bytes / 1048576.0);
  }
  std::vector<DType> seen;  // the matmul body per weight type in the file
  for (const GgufTensor& t : model.file->tensors()) {
    if (std::find(seen.begin(), seen.end(), t.type) != seen.end()) continue;
    seen.push_back(t.type);
    const std::string path = kernel::matmul_path(t.type);
    if (!path.empty()) std::fprintf(stderr, "kernel: %s -> %s\n", type_name(t.type), path.c_str());
  }
}

// --dump-logits: f32 (n_prompt, n_vocab), then the context is cleared again.
void dump_prompt_logits(Forward& fwd, const std::vector<int32_t>& ids, const std::string& path) {
  check_prompt_fits(static_cast<int64_t>(ids.size()), 0, fwd.n_ctx());
  std::vector<float> all(ids.size() * static_cast<size_t>(fwd.n_vocab()));
  fwd.eval(ids.data(), static_cast<int64_t>(ids.size()), all.data(), /*all_logits=*/true);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(all.data(), sizeof(float), all.size(), f) != all.size()) {
    if (f) std::fclose(f);
    throw std::runtime_error("cannot write " + path);
  }
  std::fclose(f);
  fwd.reset();
}

void print_run_stats(const GenerateResult& r, const Model& model, Forward& fwd, bool spec) {
  const GenerateStats& st = r.stats;
  std::fprintf(stderr,
               "prompt: %d tokens in %.1f ms (%.2f tok/s)\n"
               "decode: %d tokens in %.1f ms (%.2f tok/s), sampling %.1f ms\n"
               "generated %zu tokens, finish: %s\n",
               st.prompt_tokens, st.prompt_ms, st.prompt_tokens_per_s(), st.decode_evals,
               st.decode_ms, st.decode_tokens_per_s(), st.sample_ms, r.tokens.size(),
               finish_reason_name(r.finish));
  if (spec) {
    print_spec_stats(st);
  } else {
    std::fprintf(stderr, "effective %.2f tok/s (tokens after the first over their time)\n",
                 st.effective_tokens_per_s());
  }
  std::fputs(format_memory_report(memory_report(model, fwd)).c_str(), stderr);
}

// --prompt-cache FILE: the prompt's prefix loaded from FILE, or evaluated now and saved there.
// Returns the prompt tokens now in the cache (the sampler has seen them).
size_t use_prompt_cache(const RunArgs& ra, const Model& model, Forward& fwd, Sampler& sampler,
                        const std::vector<int32_t>& ids) {
  check_prompt_fits(static_cast<int64_t>(ids.size()), 0, fwd.n_ctx());
  const ModelIdentity identity = model_identity(model);
  const LoadedModelInfo info{model.config, identity, ra.model_path};
  const int64_t loaded = load_prompt_cache(fwd, info, ids, ra.prompt_cache);
  const int64_t saved = save_prompt_cache(fwd, info, ids, ra.prompt_cache);
  if (ra.verbose)
    std::fprintf(stderr, "prompt cache %s: %lld tokens reused, %lld saved\n",
                 ra.prompt_cache.c_str(), static_cast<long long>(loaded),
                 static_cast<long long>(saved));
  const auto past = static_cast<size_t>(fwd.n_past());
  prime_sampler(sampler, std::span<const int32_t>(ids).first(past));
  return past;
}

int run_run(const std::vector<std::string>& args) {
  RunArgs ra;
  if (!parse_run_args(args, ra)) return 0;
  auto t_load = std::chrono::steady_clock::now();
  auto model = Model::load(ra.model_path);
  auto tok = load_tokenizer(*model->file);
  const ModelConfig& cfg = model->config;
  if (!ra.have_ctx && cfg.n_ctx_train > 0) ra.fo.n_ctx = std::min(ra.fo.n_ctx, cfg.n_ctx_train);
  Forward fwd(*model, ra.fo);
  warn_if_not_pinned(fwd.pool());
  const double load_s = since(t_load);
  if (tok->n_vocab() != cfg.n_vocab && ra.verbose) {
    std::fprintf(stderr, "warning: tokenizer has %d tokens, the model %lld\n", tok->n_vocab(),
                 static_cast<long long>(cfg.n_vocab));
  }
  for (const auto& w : model->weights.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  // A packed file on a body without its kernels (or HPL_REPACK=0): a heap copy, say so
  // (every matrix with --verbose).
  const auto& unpacked = model->weights.unpacked;
  if (!unpacked.empty()) {
    std::fprintf(stderr, "unpacked at load: %zu matrices, %.1f MiB to the heap (e.g. %s)\n",
                 unpacked.size(), model->weights.unpacked_bytes / 1048576.0,
                 unpacked.front().c_str());
    for (size_t i = 1; ra.verbose && i < unpacked.size(); ++i)
      std::fprintf(stderr, "unpacked at load: %s\n", unpacked[i].c_str());
  }
  if (ra.fo.n_ctx > cfg.n_ctx_train) {
    std::fprintf(stderr, "warning: context %lld exceeds the model's training context %lld\n",
                 static_cast<long long>(ra.fo.n_ctx), static_cast<long long>(cfg.n_ctx_train));
  }

  const auto draft = make_draft_source(ra.spec, *model, *tok, ra.fo);
  ra.gp.spec.source = draft.get();
  ra.gp.spec.draft_max = ra.spec.draft_max;
  ra.gp.spec.draft_min = ra.spec.draft_min;
  const std::vector<int32_t> ids = prompt_ids(ra, *tok);
  if (ra.verbose) {
    print_cpu_setup(fwd.pool(), ra.fo.cpus);
    print_model_info(ra, *model, ids.size(), load_s);
  }
  if (!ra.dump_logits.empty()) dump_prompt_logits(fwd, ids, ra.dump_logits);

  GenerateResult r;
  if (ra.gp.max_tokens != 0 || ra.dump_logits.empty()) {
    Sampler sampler(ra.sp, fwd.n_vocab());
    std::unique_ptr<GrammarConstraint> constraint;
    if (!ra.format.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      constraint = std::make_unique<GrammarConstraint>(compile_output_format(ra.format),
                                                       build_vocab_trie(*tok), *tok);
      if (ra.verbose) std::fprintf(stderr, "grammar: ready in %.1f ms\n", since(t0) * 1e3);
      sampler.set_constraint(constraint.get());
    }
    std::span<const int32_t> todo(ids);
    if (!ra.prompt_cache.empty())
      todo = todo.subspan(use_prompt_cache(ra, *model, fwd, sampler, ids));
    r = generate(fwd, *tok, sampler, todo, ra.gp, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (constraint && ra.verbose)
      std::fprintf(stderr, "grammar: %d masks in %.1f ms (%.3f ms each), output %s\n",
                   constraint->masks(), constraint->mask_ms(),
                   constraint->mask_ms() / std::max(1, constraint->masks()),
                   constraint->complete() ? "complete" : "incomplete");
  }
  if (!ra.dump_ids.empty()) {
    std::ofstream out(ra.dump_ids);
    for (size_t i = 0; i < r.tokens.size(); ++i) out << (i ? " " : "") << r.tokens[i];
    out << "\n";
    if (!out) throw std::runtime_error("cannot write " + ra.dump_ids);
  }
  if (r.finish == FinishReason::kContextEnd) {
    std::fprintf(stderr, "note: stopped because the context (%lld tokens) is full; use -c\n",
                 static_cast<long long>(fwd.n_ctx()));
  }
  if (ra.verbose) print_run_stats(r, *model, fwd, draft != nullptr);
  return 0;
}

}  // namespace

HPL_COMMAND("run", "generate text from a prompt (streams to stdout)", run_run);

}  // namespace hpl::cli
