// The C API over hpl::Runtime: handle bookkeeping, parameter conversion, and exceptions
// turned into status codes plus a thread-local message. Nothing here throws across the C
// boundary.
#include "bindings/c/hpl.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/session_options.h"

struct hpl_model {
  std::unique_ptr<hpl::Runtime> rt;
  std::atomic<int> live_sessions{0};
};

struct hpl_session {
  hpl_model* model = nullptr;
  hpl::SessionId id = 0;
};

namespace {

thread_local std::string g_last_error;

std::shared_ptr<hpl::ModelRegistry>& registry() {
  static auto r = std::make_shared<hpl::ModelRegistry>();
  return r;
}

hpl_status fail(hpl_status s, const std::string& msg) {
  g_last_error = msg;
  return s;
}

hpl_status ok() {
  g_last_error.clear();
  return HPL_OK;
}

// Runs f, mapping every exception to a status and message.
template <class F>
hpl_status guarded(F&& f) {
  try {
    return f();
  } catch (const hpl::RuntimeError& e) {
    return fail(static_cast<hpl_status>(e.status()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(HPL_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(HPL_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(HPL_ERR_INTERNAL, "unknown exception");
  }
}

#define HPL_REQUIRE(cond, what) \
  if (!(cond)) return fail(HPL_ERR_INVALID_ARGUMENT, what)

void touch_pages(const std::string& path) {
  // Reads one byte per page of the mapping so the weights are resident before the first
  // request (prefault = 1).
  auto lease = registry()->acquire(path);
  const volatile uint8_t* p = lease->model->file->base();
  const size_t n = lease->model->file->file_size();
  uint8_t sum = 0;
  for (size_t i = 0; i < n; i += 4096) sum = static_cast<uint8_t>(sum + p[i]);
  (void)sum;
}

hpl::SamplerParams to_sampling(const hpl_sampler_params& s) {
  hpl::SamplerParams p;
  p.temp = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.repeat_penalty = s.repeat_penalty;
  p.repeat_last_n = s.repeat_last_n;
  p.seed = s.seed;
  return p;
}

hpl_stats to_stats(const hpl::RequestStats& s) {
  hpl_stats c;
  c.prompt_tokens = s.prompt_tokens;
  c.completion_tokens = s.completion_tokens;
  c.time_to_first_token_ms = s.time_to_first_token_ms;
  c.prefill_tokens_per_s = s.prefill_tokens_per_s;
  c.decode_tokens_per_s = s.decode_tokens_per_s;
  c.queue_ms = s.queue_ms;
  c.total_ms = s.total_ms;
  c.truncated = s.truncated ? 1 : 0;
  c.finish = static_cast<hpl_finish_reason>(s.finish);
  c.prefill_ms = s.prefill_ms;
  c.decode_ms = s.decode_ms;
  c.sampling_ms = s.sampling_ms;
  c.cached_tokens = s.cached_tokens;
  c.drafted = s.drafted;
  c.accepted = s.accepted;
  return c;
}

// The request of params (checked for NULL fields; ranges are checked by the runtime).
hpl_status to_request(const hpl_request_params& params, const char* fn, hpl::RequestParams& p) {
  HPL_REQUIRE(params.n_messages == 0 || params.messages,
              std::string(fn) + ": n_messages > 0 but messages is NULL");
  HPL_REQUIRE(params.n_stop_strings == 0 || params.stop_strings,
              std::string(fn) + ": n_stop_strings > 0 but stop_strings is NULL");
  if (params.prompt) p.prompt = params.prompt;
  for (size_t i = 0; i < params.n_messages; ++i) {
    const hpl_chat_message& m = params.messages[i];
    if (!m.role || !m.content)
      return fail(HPL_ERR_INVALID_ARGUMENT, std::string(fn) + ": message " + std::to_string(i) +
                                                " has a NULL role or content");
    p.messages.push_back({m.role, m.content});
  }
  for (size_t i = 0; i < params.n_stop_strings; ++i) {
    if (!params.stop_strings[i])
      return fail(HPL_ERR_INVALID_ARGUMENT,
                  std::string(fn) + ": stop string " + std::to_string(i) + " is NULL");
    p.stop_strings.emplace_back(params.stop_strings[i]);
  }
  p.sampling = to_sampling(params.sampler);
  p.max_tokens = params.max_tokens;
  p.cache_prompt = params.cache_prompt != 0;
  if (params.grammar) p.format.grammar = params.grammar;
  if (params.json_schema) p.format.json_schema = params.json_schema;
  return HPL_OK;
}

// The runtime's events as C events for callback(event, user_data).
hpl::EventCallback c_callback(hpl_event_callback callback, void* user_data) {
  return [callback, user_data](const hpl::Event& ev) {
    const std::string text(ev.text);  // NUL-terminated for C
    hpl_event c;
    c.type = static_cast<hpl_event_type>(ev.type);
    c.id = ev.id;
    c.text = text.c_str();
    c.text_len = text.size();
    c.status = static_cast<hpl_status>(ev.status);
    c.stats = to_stats(ev.stats);
    c.outputs = ev.outputs.empty() ? nullptr : ev.outputs.data();
    c.n_outputs = ev.n_outputs;
    c.dim = ev.dim;
    callback(&c, user_data);
  };
}

// C strings -> std::strings; a NULL one is refused naming it ("inputs[2] is NULL").
bool copy_texts(const char* const* texts, size_t n, const char* field,
                std::vector<std::string>* out) {
  for (size_t i = 0; i < n; ++i) {
    if (!texts[i]) {
      fail(HPL_ERR_INVALID_ARGUMENT, std::string(field) + "[" + std::to_string(i) + "] is NULL");
      return false;
    }
    out->emplace_back(texts[i]);
  }
  return true;
}

}  // namespace

extern "C" {

const char* hpl_last_error(void) {
  return g_last_error.c_str();
}

hpl_status hpl_version(int* major, int* minor, int* patch, const char** version_string) {
  if (major) *major = HPL_VERSION_MAJOR;
  if (minor) *minor = HPL_VERSION_MINOR;
  if (patch) *patch = HPL_VERSION_PATCH;
  if (version_string) *version_string = "0.1.0";
  return ok();
}

hpl_status hpl_status_name(hpl_status status, const char** name) {
  HPL_REQUIRE(name, "hpl_status_name: name is NULL");
  *name = hpl::status_name(static_cast<hpl::Status>(status));
  return ok();
}

hpl_status hpl_set_memory_budget(uint64_t bytes) {
  return guarded([&] {
    registry()->set_budget(bytes == 0 ? hpl::ModelRegistry::kUnlimited
                                      : static_cast<size_t>(bytes));
    return ok();
  });
}

hpl_status hpl_memory_info_get(hpl_model* model, hpl_memory_info* out) {
  HPL_REQUIRE(out, "hpl_memory_info_get: out is NULL");
  return guarded([&] {
    *out = hpl_memory_info{};
    if (model) {
      const hpl::RuntimeMemory m = model->rt->memory();
      out->model_bytes = m.model_bytes;
      out->kv_bytes = m.kv_bytes;
      out->scratch_bytes = m.scratch_bytes;
    }
    out->loaded_bytes = registry()->used_bytes();
    const size_t b = registry()->budget();
    out->budget_bytes = b == hpl::ModelRegistry::kUnlimited ? 0 : b;
    return ok();
  });
}

namespace {
// The session options of checked params (cpus and cache_type parsed by the runtime), with
// speculative decoding's (checked by the caller).
hpl::SessionOptions session_options(const hpl_model_params& p) {
  hpl::SessionOptions o = hpl::session_options_from_text(
      p.n_ctx, p.n_ubatch, p.n_threads, p.cpus ? p.cpus : "", p.cache_type ? p.cache_type : "");
  if (p.draft_model) o.spec.draft_path = p.draft_model;
  o.spec.lookup = p.lookup;
  o.spec.draft_max = p.draft_max;
  o.spec.draft_min = p.draft_min;
  return o;
}
}  // namespace

hpl_status hpl_model_params_init(hpl_model_params* p) {
  HPL_REQUIRE(p, "hpl_model_params_init: params is NULL");
  const hpl::SessionOptions d;  // the engine's defaults (ForwardOptions)
  p->n_threads = 0;             // the CPU topology's default
  p->n_ctx = static_cast<int32_t>(d.n_ctx);
  p->n_ubatch = static_cast<int32_t>(d.n_ubatch);
  p->prefault = 0;
  p->max_consecutive_failures = 3;
  p->cpus = nullptr;
  p->draft_model = nullptr;
  p->lookup = 0;
  p->draft_max = d.spec.draft_max;
  p->draft_min = d.spec.draft_min;
  p->cache_type = nullptr;  // f16
  return ok();
}

hpl_status hpl_model_load(const char* path, const hpl_model_params* params, hpl_model** out) {
  HPL_REQUIRE(path, "hpl_model_load: path is NULL");
  HPL_REQUIRE(out, "hpl_model_load: out is NULL");
  *out = nullptr;
  hpl_model_params p;
  hpl_model_params_init(&p);
  if (params) p = *params;
  if (p.n_threads < 0 || p.n_ctx < 1 || p.n_ubatch < 1 || p.max_consecutive_failures < 1)
    return fail(HPL_ERR_INVALID_ARGUMENT,
                "hpl_model_load: n_threads must be >= 0, n_ctx, n_ubatch and "
                "max_consecutive_failures >= 1 (got " +
                    std::to_string(p.n_threads) + ", " + std::to_string(p.n_ctx) + ", " +
                    std::to_string(p.n_ubatch) + ", " + std::to_string(p.max_consecutive_failures) +
                    ")");
  return guarded([&] {
    hpl::RuntimeOptions o;
    o.model_path = path;
    try {
      o.session = session_options(p);
    } catch (const hpl::RuntimeError& e) {
      return fail(HPL_ERR_INVALID_ARGUMENT, std::string("hpl_model_load: ") + e.what());
    }
    o.max_consecutive_failures = p.max_consecutive_failures;
    try {
      o.session.spec.check();
    } catch (const std::exception& e) {
      return fail(HPL_ERR_INVALID_ARGUMENT, std::string("hpl_model_load: ") + e.what());
    }
    o.registry = registry();
    auto m = std::make_unique<hpl_model>();
    m->rt = std::make_unique<hpl::Runtime>(std::move(o));
    if (p.prefault) touch_pages(path);
    *out = m.release();
    return ok();
  });
}

hpl_status hpl_memory_estimate_get(const char* path, const hpl_model_params* params,
                                   hpl_memory_estimate* out) {
  HPL_REQUIRE(path, "hpl_memory_estimate_get: path is NULL");
  HPL_REQUIRE(out, "hpl_memory_estimate_get: out is NULL");
  *out = hpl_memory_estimate{};
  hpl_model_params p;
  hpl_model_params_init(&p);
  if (params) p = *params;
  HPL_REQUIRE(p.n_threads >= 0 && p.n_ctx >= 1 && p.n_ubatch >= 1,
              "hpl_memory_estimate_get: n_threads must be >= 0, n_ctx and n_ubatch >= 1");
  return guarded([&] {
    hpl::SessionOptions so;  // what a session of hpl_model_load(path, params) allocates
    try {
      so = session_options(p);
      so.spec.check();
    } catch (const std::exception& e) {
      return fail(HPL_ERR_INVALID_ARGUMENT, std::string("hpl_memory_estimate_get: ") + e.what());
    }
    const hpl::MemoryEstimate e = hpl::estimate_session_memory(path, so);
    out->weights_mapped_bytes = e.weights_mapped_bytes;
    out->weights_converted_bytes = e.weights_converted_bytes;
    out->kv_bytes = e.kv_bytes;
    out->scratch_bytes = e.scratch_bytes;
    out->total_bytes = e.total();
    return ok();
  });
}

hpl_status hpl_model_unload(hpl_model* model) {
  if (!model) return ok();
  if (model->live_sessions.load() > 0)
    return fail(HPL_ERR_BUSY, "hpl_model_unload: " + std::to_string(model->live_sessions.load()) +
                                  " sessions of this model are still alive: free them first");
  return guarded([&] {
    // Refuse from a callback: the destructor joins the worker thread.
    if (model->rt->on_worker_thread())
      return fail(HPL_ERR_WOULD_DEADLOCK, "hpl_model_unload called from a callback");
    const std::string path = model->rt->model_path();
    delete model;
    registry()->unload(path);  // drop the weights if no other handle uses them
    return ok();
  });
}

hpl_status hpl_model_failed(hpl_model* model, int32_t* failed) {
  HPL_REQUIRE(model && failed, "hpl_model_failed: NULL argument");
  return guarded([&] {
    *failed = model->rt->failed() ? 1 : 0;
    if (*failed) g_last_error = model->rt->failed_reason();
    return HPL_OK;
  });
}

hpl_status hpl_model_reset(hpl_model* model) {
  HPL_REQUIRE(model, "hpl_model_reset: model is NULL");
  return guarded([&] {
    model->rt->reset_failed_state();
    return ok();
  });
}

hpl_status hpl_session_create(hpl_model* model, hpl_session** out) {
  HPL_REQUIRE(model && out, "hpl_session_create: NULL argument");
  *out = nullptr;
  return guarded([&] {
    auto s = std::make_unique<hpl_session>();
    s->model = model;
    s->id = model->rt->create_session();
    ++model->live_sessions;
    *out = s.release();
    return ok();
  });
}

hpl_status hpl_session_free(hpl_session* session) {
  if (!session) return ok();
  return guarded([&] {
    session->model->rt->free_session(session->id);
    --session->model->live_sessions;
    delete session;
    return ok();
  });
}

hpl_status hpl_session_reset(hpl_session* session) {
  HPL_REQUIRE(session, "hpl_session_reset: session is NULL");
  return guarded([&] {
    session->model->rt->reset_session(session->id);
    return ok();
  });
}

hpl_status hpl_session_restart(hpl_session* session, int32_t keep_last) {
  HPL_REQUIRE(session, "hpl_session_restart: session is NULL");
  HPL_REQUIRE(keep_last >= 0, "hpl_session_restart: keep_last must be >= 0");
  return guarded([&] {
    session->model->rt->restart_session(session->id, keep_last);
    return ok();
  });
}

hpl_status hpl_session_save(hpl_session* session, const char* path) {
  HPL_REQUIRE(session && path, "hpl_session_save: NULL argument");
  return guarded([&] {
    session->model->rt->save_session(session->id, path);
    return ok();
  });
}

hpl_status hpl_session_restore(hpl_session* session, const char* path) {
  HPL_REQUIRE(session && path, "hpl_session_restore: NULL argument");
  return guarded([&] {
    session->model->rt->restore_session(session->id, path);
    return ok();
  });
}

hpl_status hpl_prefix_save(hpl_model* model, const hpl_request_params* prefix, const char* path) {
  HPL_REQUIRE(model && prefix && path, "hpl_prefix_save: NULL argument");
  return guarded([&] {
    hpl::RequestParams p;
    if (const hpl_status st = to_request(*prefix, "hpl_prefix_save", p); st != HPL_OK) return st;
    model->rt->save_prefix(p, path);
    return ok();
  });
}

hpl_status hpl_prefix_load(hpl_model* model, const char* path, const hpl_request_params* expect,
                           int64_t* n_tokens) {
  HPL_REQUIRE(model && path, "hpl_prefix_load: NULL argument");
  return guarded([&] {
    hpl::RequestParams p;
    if (expect)
      if (const hpl_status st = to_request(*expect, "hpl_prefix_load", p); st != HPL_OK) return st;
    const int64_t n = model->rt->load_prefix(path, expect ? &p : nullptr);
    if (n_tokens) *n_tokens = n;
    return ok();
  });
}

hpl_status hpl_session_info_get(hpl_session* session, hpl_session_info* out) {
  HPL_REQUIRE(session && out, "hpl_session_info_get: NULL argument");
  return guarded([&] {
    const hpl::SessionInfo i = session->model->rt->session_info(session->id);
    out->n_ctx = i.n_ctx;
    out->n_past = i.n_past;
    out->n_tokens = i.n_tokens;
    out->n_exchanges = i.n_exchanges;
    return ok();
  });
}

hpl_status hpl_request_params_init(hpl_request_params* p) {
  HPL_REQUIRE(p, "hpl_request_params_init: params is NULL");
  const hpl::SamplerParams d;
  *p = hpl_request_params{};
  p->sampler.temperature = d.temp;
  p->sampler.top_k = d.top_k;
  p->sampler.top_p = d.top_p;
  p->sampler.min_p = d.min_p;
  p->sampler.repeat_penalty = d.repeat_penalty;
  p->sampler.repeat_last_n = d.repeat_last_n;
  p->sampler.seed = d.seed;
  p->max_tokens = 128;
  p->cache_prompt = 1;
  return ok();
}

hpl_status hpl_submit(hpl_model* model, hpl_session* session, const hpl_request_params* params,
                      hpl_event_callback callback, void* user_data, hpl_request_id* out_id) {
  HPL_REQUIRE(model && params && callback && out_id, "hpl_submit: NULL argument");
  HPL_REQUIRE(!session || session->model == model,
              "hpl_submit: the session belongs to another model");
  *out_id = 0;
  return guarded([&] {
    hpl::RequestParams p;
    if (const hpl_status st = to_request(*params, "hpl_submit", p); st != HPL_OK) return st;
    p.session = session ? session->id : 0;
    *out_id = model->rt->submit(std::move(p), c_callback(callback, user_data));
    return ok();
  });
}

hpl_status hpl_model_info_get(hpl_model* model, hpl_model_info* out) {
  HPL_REQUIRE(model && out, "hpl_model_info_get: NULL argument");
  out->kind = static_cast<hpl_model_kind>(model->rt->model_kind());
  out->n_embd = static_cast<int32_t>(model->rt->n_embd());
  out->n_ctx_embed = static_cast<int32_t>(model->rt->embed_n_ctx());
  return ok();
}

hpl_status hpl_embed_params_init(hpl_embed_params* p) {
  HPL_REQUIRE(p, "hpl_embed_params_init: params is NULL");
  p->pooling = HPL_POOLING_MODEL;
  p->normalize = 1;
  p->truncate = 0;
  return ok();
}

hpl_status hpl_submit_embed(hpl_model* model, const char* const* inputs, size_t n_inputs,
                            const hpl_embed_params* params, hpl_event_callback callback,
                            void* user_data, hpl_request_id* out_id) {
  HPL_REQUIRE(model && callback && out_id, "hpl_submit_embed: NULL argument");
  HPL_REQUIRE(n_inputs == 0 || inputs, "hpl_submit_embed: n_inputs > 0 but inputs is NULL");
  *out_id = 0;
  hpl_embed_params ep;
  hpl_embed_params_init(&ep);
  if (params) ep = *params;
  HPL_REQUIRE(ep.pooling == HPL_POOLING_MODEL || ep.pooling == HPL_POOLING_MEAN ||
                  ep.pooling == HPL_POOLING_CLS || ep.pooling == HPL_POOLING_LAST,
              "hpl_submit_embed: pooling must be HPL_POOLING_MODEL, _MEAN, _CLS or _LAST, got " +
                  std::to_string(static_cast<int>(ep.pooling)));
  return guarded([&] {
    hpl::EmbedRequest r;
    if (!copy_texts(inputs, n_inputs, "inputs", &r.inputs)) return HPL_ERR_INVALID_ARGUMENT;
    r.params.pooling = static_cast<hpl::Pooling>(ep.pooling);
    r.params.normalize = ep.normalize != 0;
    r.params.truncate = ep.truncate != 0;
    *out_id = model->rt->submit_embed(std::move(r), c_callback(callback, user_data));
    return ok();
  });
}

hpl_status hpl_submit_rerank(hpl_model* model, const char* query, const char* const* documents,
                             size_t n_documents, int32_t truncate, hpl_event_callback callback,
                             void* user_data, hpl_request_id* out_id) {
  HPL_REQUIRE(model && callback && out_id, "hpl_submit_rerank: NULL argument");
  HPL_REQUIRE(query, "hpl_submit_rerank: query is NULL");
  HPL_REQUIRE(n_documents == 0 || documents,
              "hpl_submit_rerank: n_documents > 0 but documents is NULL");
  *out_id = 0;
  return guarded([&] {
    hpl::RerankRequest r;
    r.query = query;
    r.truncate = truncate != 0;
    if (!copy_texts(documents, n_documents, "documents", &r.documents))
      return HPL_ERR_INVALID_ARGUMENT;
    *out_id = model->rt->submit_rerank(std::move(r), c_callback(callback, user_data));
    return ok();
  });
}

hpl_status hpl_stop(hpl_model* model, hpl_request_id id) {
  HPL_REQUIRE(model, "hpl_stop: model is NULL");
  return guarded([&] {
    if (!model->rt->stop(id))
      return fail(HPL_ERR_NOT_FOUND,
                  "hpl_stop: request " + std::to_string(id) + " is unknown or already finished");
    return ok();
  });
}

hpl_status hpl_wait(hpl_model* model, hpl_request_id id, int64_t timeout_ms) {
  HPL_REQUIRE(model, "hpl_wait: model is NULL");
  return guarded([&] {
    if (!model->rt->wait(id, timeout_ms))
      return fail(HPL_ERR_TIMEOUT, "hpl_wait: request " + std::to_string(id) +
                                       " did not finish within " + std::to_string(timeout_ms) +
                                       " ms");
    return ok();
  });
}

hpl_status hpl_wait_idle(hpl_model* model) {
  HPL_REQUIRE(model, "hpl_wait_idle: model is NULL");
  return guarded([&] {
    model->rt->wait_idle();
    return ok();
  });
}

hpl_status hpl_tokenize(hpl_model* model, const char* text, size_t text_len, int32_t add_special,
                        int32_t parse_special, int32_t* tokens, size_t capacity, size_t* n_tokens) {
  HPL_REQUIRE(model && n_tokens, "hpl_tokenize: NULL argument");
  HPL_REQUIRE(text || text_len == 0, "hpl_tokenize: text is NULL");
  HPL_REQUIRE(tokens || capacity == 0, "hpl_tokenize: tokens is NULL but capacity > 0");
  *n_tokens = 0;
  return guarded([&] {
    auto lease = registry()->acquire(model->rt->model_path());
    const std::vector<int32_t> ids = lease->tokenizer->encode(
        std::string_view(text ? text : "", text_len), add_special != 0, parse_special != 0);
    std::copy_n(ids.begin(), std::min(capacity, ids.size()), tokens);
    *n_tokens = ids.size();
    return ok();
  });
}

hpl_status hpl_detokenize(hpl_model* model, const int32_t* tokens, size_t n_tokens,
                          int32_t render_special, char* buf, size_t capacity, size_t* text_len) {
  HPL_REQUIRE(model && text_len, "hpl_detokenize: NULL argument");
  HPL_REQUIRE(tokens || n_tokens == 0, "hpl_detokenize: tokens is NULL");
  HPL_REQUIRE(buf || capacity == 0, "hpl_detokenize: buf is NULL but capacity > 0");
  *text_len = 0;
  return guarded([&] {
    auto lease = registry()->acquire(model->rt->model_path());
    const hpl::Tokenizer& tok = *lease->tokenizer;
    for (size_t i = 0; i < n_tokens; ++i)
      if (tokens[i] < 0 || tokens[i] >= tok.n_vocab())
        return fail(HPL_ERR_INVALID_ARGUMENT, "hpl_detokenize: token " + std::to_string(i) +
                                                  " is " + std::to_string(tokens[i]) +
                                                  ", outside the vocab [0, " +
                                                  std::to_string(tok.n_vocab()) + ")");
    const std::string text =
        tok.decode(std::vector<int32_t>(tokens, tokens + n_tokens), render_special != 0);
    std::copy_n(text.data(), std::min(capacity, text.size()), buf);
    *text_len = text.size();
    return ok();
  });
}

}  // extern "C"
