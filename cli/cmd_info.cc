// hpl info MODEL.gguf [--tensors] [--metadata] [--full-arrays] [--json]
//                     [--memory [-c N] [--cache-type T] [--ubatch B] [-t T]] | hpl info --cpu
// Summarizes a GGUF file: version, architecture, hyper-parameters, tokenizer, bytes per tensor
// type; optionally the tensor table and every metadata key, and the memory a context needs
// (weights, KV cache, scratch) before loading anything. Reading it validates the whole
// file, so a corrupt file fails here with the reader's error (exit code 1).
// --cpu shows this machine's CPU tiers and the default thread count (kernel/cpu_topology.h).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/embed_inputs.h"
#include "cli/json_writer.h"
#include "engine/memory_estimate.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/repack_weights.h"
#include "gguf/gguf.h"
#include "kernel/cpu_topology.h"
#include "kernel/ops.h"

namespace hpl::cli {
namespace {

// "{arch}." keys shown as hyper-parameters, when present.
const char* const kHparams[] = {
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "attention.layer_norm_epsilon",
    "attention.sliding_window",
    "attention.sliding_window_pattern",
    "attention.scale",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.freq_base_swa",
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scaling.attn_factor",
    "rope.scaling.original_context_length",
    "vocab_size",
    "expert_count",
    "expert_used_count",
};

constexpr uint64_t kShortArray = 8;  // array items shown unless --full-arrays

struct InfoOptions {
  std::string path;
  std::string cpu_root;  // --cpu-root DIR (hidden, for tests): read this sysfs tree instead
  bool tensors = false, metadata = false, full_arrays = false, json = false, cpu = false;
  bool memory = false, have_ctx = false, have_ubatch = false;
  ForwardOptions fo;
};

// The options the command that runs the model would use. hpl run: -c defaults to 2048, at
// most the training context, --ubatch to 256; hpl embed / rerank (embedding and rerank
// models): the training context up to kEmbedMaxCtx, batches of kEmbedUbatch.
MemoryEstimate estimate(const GgufFile& f, InfoOptions& o) {
  const bool embeds = model_kind(f, read_model_config(f)) != ModelKind::kGenerate;
  if (!o.have_ubatch && embeds) o.fo.n_ubatch = kEmbedUbatch;
  if (!o.have_ctx) {
    const int64_t train = f.i64_or("{arch}.context_length", 0);
    if (embeds) o.fo.n_ctx = kEmbedMaxCtx;
    if (train > 0) o.fo.n_ctx = std::min(o.fo.n_ctx, train);
  }
  check_ctx_threads(o.fo.n_ctx, o.fo.n_threads);
  return estimate_memory(f, o.fo);
}

void print_memory_text(const MemoryEstimate& e, const InfoOptions& o) {
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  if (e.encoder) {
    std::printf("memory for texts of up to %lld tokens (batches of %lld, %d threads)\n",
                static_cast<long long>(o.fo.n_ctx), static_cast<long long>(o.fo.n_ubatch),
                o.fo.n_threads);
  } else {
    std::printf("memory for a context of %lld tokens (micro-batch %lld, %d threads, KV cache %s)\n",
                static_cast<long long>(o.fo.n_ctx), static_cast<long long>(o.fo.n_ubatch),
                o.fo.n_threads, kv_type_name(o.fo.cache_type));
  }
  std::printf("  weights mapped    %10.1f MiB  (%zu bytes, used in place from the file)\n",
              mib(e.weights_mapped_bytes), e.weights_mapped_bytes);
  std::printf("  weights converted %10.1f MiB  (%zu bytes, f32 copies made at load)\n",
              mib(e.weights_converted_bytes), e.weights_converted_bytes);
  if (e.encoder) {
    std::printf("  KV cache          none (an encoder, %s: attention within each batch)\n",
                model_kind_name(e.kind));
  } else {
    std::printf(
        "  KV cache          %10.1f MiB  (%zu bytes; %.1f MiB if every layer held the whole "
        "context; %.1f MiB in f16)\n",
        mib(e.kv_bytes), e.kv_bytes, mib(e.kv_bytes_full), mib(e.kv_bytes_f16));
  }
  std::printf("  scratch           %10.1f MiB  (%zu bytes)\n", mib(e.scratch_bytes),
              e.scratch_bytes);
  std::printf("  total             %10.1f MiB  (%zu bytes)\n", mib(e.total()), e.total());
}

// Mapped weights that load moves to the heap on this body (repacked, or unpacked from a packed
// file), and those stored packed (used in place).
size_t heap_at_load(const GgufFile& f) {
  return heap_bytes_at_load(load_model_weights(f, read_model_config(f), /*count_only=*/true));
}

void print_heap_text(const GgufFile& f) {
  const size_t heap = heap_at_load(f);
  std::printf(
      "  weights to heap   %10.1f MiB  (%zu bytes of the mapped %s at load by the %s body: a heap "
      "copy "
      "replacing their mapped pages; HPL_REPACK=0 %s)\n",
      static_cast<double>(heap) / (1024.0 * 1024.0), heap,
      f.packed_layout() != 0 ? "unpacked" : "repacked", isa_name(),
      f.packed_layout() != 0 ? "unpacks every packed tensor" : "keeps them in place");
}

// Writes a metadata value as JSON; arrays longer than `max_items` are cut short.
void write_value(JsonWriter& w, const GgufValue& v, uint64_t max_items) {
  switch (v.type) {
    case GgufType::UINT8:
    case GgufType::UINT16:
    case GgufType::UINT32:
    case GgufType::UINT64:
      w.num(v.num.u);
      break;
    case GgufType::INT8:
    case GgufType::INT16:
    case GgufType::INT32:
    case GgufType::INT64:
      w.num(v.num.i);
      break;
    case GgufType::FLOAT32:
      w.num(v.num.f, 9);
      break;  // 9 digits round-trip a float
    case GgufType::FLOAT64:
      w.num(v.num.f, 17);
      break;
    case GgufType::BOOL:
      w.boolean(v.num.u != 0);
      break;
    case GgufType::STRING:
      w.str(v.str);
      break;
    case GgufType::ARRAY: {
      w.begin_array();
      uint64_t n = std::min(v.count, max_items);
      for (uint64_t i = 0; i < n; ++i) write_value(w, gguf_array_elem(v, i), max_items);
      w.end_array();
      break;
    }
  }
}

std::string value_text(const GgufValue& v, uint64_t max_items) {
  JsonWriter w;
  write_value(w, v, max_items);
  std::string s = w.text();
  if (v.type == GgufType::ARRAY && v.count > max_items) {
    s.insert(s.size() - 1, ", ... " + std::to_string(v.count) + " items");
  }
  return s;
}

std::string type_text(const GgufValue& v) {
  std::string t = gguf_type_name(v.type);
  if (v.type == GgufType::ARRAY) t += std::string("[") + gguf_type_name(v.elem_type) + "]";
  return t;
}

std::string shape_text(const GgufTensor& t) {
  std::string s;
  for (int d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s;
}

struct TypeStats {
  uint64_t count = 0, bytes = 0;
};

// Tensors stored in hpl's packed types (a file written by hpl pack).
TypeStats packed_stats(const GgufFile& f) {
  TypeStats s;
  for (const GgufTensor& t : f.tensors()) {
    if (!is_packed_type(t.type)) continue;
    ++s.count;
    s.bytes += t.n_bytes;
  }
  return s;
}

uint64_t vocab_size(const GgufFile& f) {
  const GgufValue* tok = f.find("tokenizer.ggml.tokens");
  return tok && tok->type == GgufType::ARRAY ? tok->count : 0;
}

// "memory": what a context of the options' size needs (hpl run's defaults).
void json_memory(JsonWriter& w, const GgufFile& f, const InfoOptions& o) {
  InfoOptions oc = o;
  const MemoryEstimate e = estimate(f, oc);
  w.key("memory").begin_object();
  w.key("n_ctx").num(static_cast<uint64_t>(oc.fo.n_ctx));
  w.key("n_ubatch").num(static_cast<uint64_t>(oc.fo.n_ubatch));
  w.key("n_threads").num(static_cast<uint64_t>(oc.fo.n_threads));
  w.key("cache_type").str(e.encoder ? "none" : kv_type_name(oc.fo.cache_type));
  w.key("kind").str(model_kind_name(e.kind));
  w.key("weights_mapped_bytes").num(static_cast<uint64_t>(e.weights_mapped_bytes));
  w.key("weights_converted_bytes").num(static_cast<uint64_t>(e.weights_converted_bytes));
  w.key("weights_heap_at_load_bytes").num(static_cast<uint64_t>(heap_at_load(f)));
  w.key("kv_bytes").num(static_cast<uint64_t>(e.kv_bytes));
  w.key("kv_bytes_full_context").num(static_cast<uint64_t>(e.kv_bytes_full));
  w.key("kv_bytes_f16").num(static_cast<uint64_t>(e.kv_bytes_f16));
  w.key("scratch_bytes").num(static_cast<uint64_t>(e.scratch_bytes));
  w.key("total_bytes").num(static_cast<uint64_t>(e.total()));
  w.end_object();
}

// "tensors": the tensor table.
void json_tensors(JsonWriter& w, const GgufFile& f) {
  w.key("tensors").begin_array();
  for (const GgufTensor& t : f.tensors()) {
    w.begin_object();
    w.key("name").str(t.name);
    w.key("type").str(type_name(t.type));
    w.key("type_id").num(static_cast<uint64_t>(t.type));
    w.key("shape").begin_array();
    for (int d = 0; d < t.n_dims; ++d) w.num(t.ne[d]);
    w.end_array();
    w.key("offset").num(t.offset);
    w.key("file_offset").num(static_cast<uint64_t>(f.data_offset() + t.offset));
    w.key("bytes").num(static_cast<uint64_t>(t.n_bytes));
    w.key("rows_unaligned").boolean(t.rows_unaligned);
    w.end_object();
  }
  w.end_array();
}

void print_json(const GgufFile& f, const InfoOptions& o,
                const std::map<std::string, TypeStats>& by_type, uint64_t total_bytes) {
  JsonWriter w;
  w.begin_object();
  w.key("file").str(f.path());
  w.key("file_size").num(static_cast<uint64_t>(f.file_size()));
  w.key("version").num(static_cast<uint64_t>(f.version()));
  w.key("alignment").num(static_cast<uint64_t>(f.alignment()));
  w.key("data_offset").num(static_cast<uint64_t>(f.data_offset()));
  w.key("architecture").str(f.architecture());
  w.key("name").str(f.str_or("general.name", ""));
  w.key("hparams").begin_object();
  for (const char* k : kHparams) {
    if (const GgufValue* v = f.find(std::string("{arch}.") + k))
      write_value(w.key(k), *v, kShortArray);
  }
  w.end_object();
  w.key("tokenizer").begin_object();
  w.key("model").str(f.str_or("tokenizer.ggml.model", ""));
  w.key("pre").str(f.str_or("tokenizer.ggml.pre", ""));
  w.key("vocab_size").num(vocab_size(f));
  w.end_object();
  w.key("isa").str(isa_name());
  w.key("packed_layout").num(static_cast<uint64_t>(f.packed_layout()));
  w.key("packed_tensor_count").num(packed_stats(f).count);
  w.key("packed_tensor_bytes").num(packed_stats(f).bytes);
  if (o.memory) json_memory(w, f, o);
  w.key("tensor_count").num(static_cast<uint64_t>(f.tensors().size()));
  w.key("tensor_bytes").num(total_bytes);
  w.key("types").begin_object();
  for (const auto& [name, s] : by_type) {
    w.key(name).begin_object().key("count").num(s.count).key("bytes").num(s.bytes).end_object();
  }
  w.end_object();
  if (o.tensors) json_tensors(w, f);
  if (o.metadata) {
    uint64_t max_items = o.full_arrays ? UINT64_MAX : kShortArray;
    w.key("metadata").begin_object();
    for (const GgufKV& kv : f.metadata()) {
      w.key(kv.key).begin_object();
      w.key("type").str(gguf_type_name(kv.value.type));
      if (kv.value.type == GgufType::ARRAY) {
        w.key("elem_type").str(gguf_type_name(kv.value.elem_type));
        w.key("count").num(kv.value.count);
      }
      write_value(w.key("value"), kv.value, max_items);
      w.end_object();
    }
    w.end_object();
  }
  w.end_object();
  std::printf("%s\n", w.text().c_str());
}

void print_text(const GgufFile& f, const InfoOptions& o,
                const std::map<std::string, TypeStats>& by_type, uint64_t total_bytes) {
  std::printf("file           %s (%zu bytes)\n", f.path().c_str(), f.file_size());
  std::printf("gguf version   %u (alignment %zu, data at offset %zu)\n", f.version(), f.alignment(),
              f.data_offset());
  std::printf("architecture   %s\n",
              f.architecture().empty() ? "(none)" : f.architecture().c_str());
  std::printf("name           %s\n", f.str_or("general.name", "(none)").c_str());
  bool any = false;
  for (const char* k : kHparams) {
    const GgufValue* v = f.find(std::string("{arch}.") + k);
    if (!v) continue;
    if (!any) std::printf("hyper-parameters\n");
    any = true;
    std::printf("  %-34s %s\n", k, value_text(*v, kShortArray).c_str());
  }
  std::printf("tokenizer      %s (pre: %s), vocab %" PRIu64 "\n",
              f.str_or("tokenizer.ggml.model", "(none)").c_str(),
              f.str_or("tokenizer.ggml.pre", "(none)").c_str(), vocab_size(f));
  std::printf("tensors        %zu, %" PRIu64 " bytes\n", f.tensors().size(), total_bytes);
  if (f.packed_layout() != 0) {
    std::printf("packed         layout %u (hpl pack): %" PRIu64 " tensors, %" PRIu64
                " bytes in hpl's packed types, mapped in place (only hpl reads this file)\n",
                f.packed_layout(), packed_stats(f).count, packed_stats(f).bytes);
  }
  for (const auto& [name, s] : by_type) {
    std::string path;  // the matmul body this CPU runs for the type
    for (const GgufTensor& t : f.tensors()) {
      if (name == type_name(t.type)) {
        path = kernel::matmul_path(t.type);
        break;
      }
    }
    std::printf("  %-8s %5" PRIu64 " tensors %12" PRIu64 " bytes%s%s\n", name.c_str(), s.count,
                s.bytes, path.empty() ? "" : "  matmul: ", path.c_str());
  }
  std::printf("kernels        %s (cpu: %s; HPL_ISA forces one)\n", isa_name(),
              kernel::cpu_feature_names().c_str());
  if (o.tensors) {
    std::printf("\n%-4s %-36s %-6s %-22s %12s %12s\n", "#", "name", "type", "shape", "offset",
                "bytes");
    size_t i = 0;
    for (const GgufTensor& t : f.tensors()) {
      std::printf("%-4zu %-36s %-6s %-22s %12" PRIu64 " %12zu%s\n", i++, t.name.c_str(),
                  type_name(t.type), shape_text(t).c_str(), t.offset, t.n_bytes,
                  t.rows_unaligned ? "  (blocks cross rows)" : "");
    }
  }
  if (o.memory) {
    InfoOptions oc = o;
    const MemoryEstimate e = estimate(f, oc);
    print_memory_text(e, oc);
    print_heap_text(f);
  }
  if (o.metadata) {
    uint64_t max_items = o.full_arrays ? UINT64_MAX : kShortArray;
    std::printf("\n%zu metadata keys\n", f.metadata().size());
    for (const GgufKV& kv : f.metadata()) {
      std::printf("  %-44s %-16s %s\n", kv.key.c_str(), type_text(kv.value).c_str(),
                  value_text(kv.value, max_items).c_str());
    }
  }
}

int cmd_info(const std::vector<std::string>& args) {
  InfoOptions o;
  o.fo.n_threads = default_threads();
  std::vector<std::string> paths;
  static const std::string metadata_help =
      "list every metadata key (arrays cut to " + std::to_string(kShortArray) + " items)";
  Options p(
      "usage: hpl info MODEL.gguf [--tensors] [--metadata] [--full-arrays] [--json]\n"
      "                [--memory [-c N] [--cache-type T] [--ubatch B] [-t T]]\n"
      "       hpl info --cpu");
  p.flag({"--cpu"}, "CPU cores by speed tier and the default thread count", o.cpu)
      .value({"--cpu-root"}, "DIR", Options::kHidden,  // tests: read this sysfs tree instead
             [&o](auto&, const std::string& v) {
               o.cpu_root = v;
               o.cpu = true;
             })
      .flag({"--tensors"}, "list the tensor table (name, type, shape, offset, bytes)", o.tensors)
      .flag({"--memory"},
            "bytes of weights, KV cache and scratch a context of -c N tokens\n"
            "needs (defaults as hpl run), without loading the model",
            o.memory)
      .value({"-c", "--ctx-size"}, "N",
             "with --memory: context size (default 2048; embedding and rerank\n"
             "models: theirs, at most 8192, as hpl embed)",
             [&o](const std::string& opt, const std::string& v) {
               o.fo.n_ctx = to_int(opt, v);
               o.have_ctx = true;
             })
      .value({"--ubatch", "-ub"}, "N",
             "with --memory: prefill micro-batch (default 256; embedding and\n"
             "rerank models: 512, as hpl embed)",
             [&o](const std::string& opt, const std::string& v) {
               o.fo.n_ubatch = to_int(opt, v);
               o.have_ubatch = true;
             })
      .number({"-t", "--threads"}, "N", "with --memory: threads", o.fo.n_threads);
  add_cache_type_option(p, o.fo.cache_type,
                        "with --memory: KV cache type f16 (default), f32, q8_0, q4_0");
  p.flag({"--metadata"}, metadata_help.c_str(), o.metadata)
      .flag({"--full-arrays"}, "with --metadata: print arrays in full", o.full_arrays)
      .flag({"--json"}, "print everything as one JSON object", o.json)
      .positional(paths);
  if (!p.parse(args)) return 0;
  if (paths.size() > 1) p.fail("more than one model given");
  if (!paths.empty()) o.path = paths[0];
  if (o.cpu) {
    const std::string t =
        o.cpu_root.empty() ? kernel::describe_cpu_topology(kernel::host_cpu_topology())
                           : kernel::describe_cpu_topology(kernel::read_cpu_topology(o.cpu_root));
    std::printf("%s", t.c_str());
    if (o.path.empty()) return 0;
    std::printf("\n");
  }
  if (o.path.empty()) p.fail("a MODEL.gguf (or --cpu) is required");

  auto f = GgufFile::open(o.path);
  std::map<std::string, TypeStats> by_type;
  uint64_t total = 0;
  for (const GgufTensor& t : f->tensors()) {
    TypeStats& s = by_type[type_name(t.type)];
    ++s.count;
    s.bytes += t.n_bytes;
    total += t.n_bytes;
  }
  if (o.json) {
    print_json(*f, o, by_type, total);
  } else {
    print_text(*f, o, by_type, total);
  }
  return 0;
}

}  // namespace

HPL_COMMAND("info", "show a GGUF file's metadata, hyper-parameters and tensors", cmd_info);

}  // namespace hpl::cli
