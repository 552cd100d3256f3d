/* happy-phone-llm C API (C99).
 *
 * A model handle owns one long-lived worker thread that runs requests strictly in submission
 * order (FIFO). hpl_submit() only queues a request and returns its id; the text arrives as
 * events through a callback. Sessions keep a conversation's KV cache between turns.
 * Embedding (hpl_submit_embed) and rerank (hpl_submit_rerank) requests go through the same
 * queue and events; their vectors or scores arrive with the DONE event.
 *
 * Conventions
 * - Every function returns an hpl_status; HPL_OK is 0. On failure hpl_last_error() gives a
 *   message for the calling thread (thread-local, valid until that thread's next call).
 * - Handles are opaque. Strings are UTF-8 and NUL-terminated; the library copies what it
 *   keeps, so argument memory may be freed as soon as a call returns.
 * - Request text (prompt, chat roles and contents, stop strings) must be valid UTF-8: no
 *   overlong forms, surrogates or code points above U+10FFFF. Invalid text is refused by
 *   hpl_submit() with HPL_ERR_INVALID_ARGUMENT and a message naming the field and the byte
 *   offset ("messages[1].content is not valid UTF-8 at byte 12"); it is never repaired.
 *   `hpl run`, `hpl chat` and `hpl serve` apply the same check and the same sampling ranges
 *   (runtime/request_checks.h).
 * - All functions are thread-safe, except that a handle must not be used after (or while)
 *   it is freed.
 *
 * Callbacks: which thread, and what may be called from one
 * - HPL_EVENT_QUEUED is delivered on the thread calling hpl_submit(), before it returns.
 * - HPL_EVENT_DONE of a request stopped while still queued is delivered on the thread
 *   calling hpl_stop() (or hpl_model_unload()), before it returns.
 * - Every other event is delivered on the model's worker thread.
 * - A request's events never overlap and arrive in order: QUEUED, PROCESSING, TOKEN...,
 *   then exactly one of DONE or ERROR, always, after which the callback is not called again
 *   for that request (free the user data there).
 * - event->text is valid only during the callback: copy it.
 * - Inside a callback you may call hpl_submit(), hpl_stop(), hpl_last_error() and the
 *   query functions (hpl_model_failed(), hpl_memory_info_get(), hpl_version()), and
 *   hpl_session_create(). hpl_wait(), hpl_wait_idle(), hpl_model_unload() and every other
 *   hpl_session_* function (hpl_session_free() included, even for a session whose request
 *   just ended) return HPL_ERR_WOULD_DEADLOCK when called from a worker thread, and do
 *   nothing. Keep callbacks short: the worker waits for them.
 */
#ifndef HPL_H_
#define HPL_H_

#include <stddef.h>
#include <stdint.h>

/* HPL_API: exported while building libhpl (its CMake target defines HPL_BUILDING_LIBRARY),
 * imported by users; define HPL_STATIC when linking a static libhpl. */
#if defined(_WIN32) && !defined(HPL_STATIC)
#if defined(HPL_BUILDING_LIBRARY)
#define HPL_API __declspec(dllexport)
#else
#define HPL_API __declspec(dllimport)
#endif
#elif defined(HPL_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define HPL_API __attribute__((visibility("default")))
#else
#define HPL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HPL_VERSION_MAJOR 0
#define HPL_VERSION_MINOR 1
#define HPL_VERSION_PATCH 0

typedef enum hpl_status {
  HPL_OK = 0,
  HPL_ERR_INVALID_ARGUMENT = 1, /* bad parameter or input */
  HPL_ERR_IO = 2,               /* a file could not be opened, read or written */
  HPL_ERR_MODEL = 3,            /* the model file is corrupt or unsupported */
  HPL_ERR_CONTEXT_FULL = 4,     /* the turn does not fit; the message gives the sizes */
  HPL_ERR_OUT_OF_MEMORY = 5,    /* allocation failed or the memory budget is exhausted */
  HPL_ERR_FAILED_STATE = 6,     /* max_consecutive_failures (hpl_model_params, default 3)
                                   failed requests in a row: call hpl_model_reset() */
  HPL_ERR_SESSION_MISMATCH = 7, /* a session file from another model */
  HPL_ERR_BUSY = 8,             /* in use: e.g. unloading a model that has sessions */
  HPL_ERR_WOULD_DEADLOCK = 9,   /* a blocking call from inside a callback */
  HPL_ERR_INTERNAL = 10,
  HPL_ERR_NOT_FOUND = 11, /* hpl_stop(): no such request, or it already finished */
  HPL_ERR_TIMEOUT = 12    /* hpl_wait(): the timeout expired first */
} hpl_status;

typedef struct hpl_model hpl_model;
typedef struct hpl_session hpl_session;
typedef uint64_t hpl_request_id; /* > 0, increasing per model in submission order */

/* ---- version, errors, memory ---- */

HPL_API const char* hpl_last_error(void); /* never NULL; "" when there was no error */
HPL_API hpl_status hpl_version(int* major, int* minor, int* patch, const char** version_string);
HPL_API hpl_status hpl_status_name(hpl_status status, const char** name);

/* Memory budget for loaded models (bytes of mapped weights, all models together). Loading a
 * model that does not fit unloads idle models, least recently used first; a model with a
 * running request or a live session is never unloaded (a queued one loads it when it runs). A
 * model is idle as soon as its last request's terminal event is being delivered (its handle may
 * keep a context for the next stateless request, but gives it up when the room is needed),
 * whether or not a budget was set when the request ran. Lowering the budget unloads idle
 * models the same way. An unloaded model's handle stays valid: its next request or session
 * loads it again. A request whose model does not fit while other models' requests run waits for
 * them to end (it stays queued; hpl_stop() ends the wait); it fails with HPL_ERR_OUT_OF_MEMORY only
 * when live sessions of other models hold the room, or the model is larger than the budget (a
 * session that does not fit fails at once). 0 = unlimited (the default). */
HPL_API hpl_status hpl_set_memory_budget(uint64_t bytes);

typedef struct hpl_memory_info {
  uint64_t model_bytes;   /* this model's weights (and its draft model's) if loaded, else 0 */
  uint64_t kv_bytes;      /* KV caches of this model's live sessions */
  uint64_t scratch_bytes; /* forward-pass scratch of this model's live sessions */
  uint64_t loaded_bytes;  /* all loaded models, with the prompt-cache states charged to them
                             (cache_prompt in hpl_request_params) */
  uint64_t budget_bytes;  /* the budget; 0 = unlimited */
} hpl_memory_info;
/* model may be NULL: then only loaded_bytes and budget_bytes are filled. */
HPL_API hpl_status hpl_memory_info_get(hpl_model* model, hpl_memory_info* out);

/* ---- models ---- */

/* Names follow llama.cpp's (n_ctx, n_ubatch, n_threads); the defaults are the engine's. */
typedef struct hpl_model_params {
  int32_t n_threads; /* compute threads per request; 0 (default): one per physical core at
                        >= half the fastest core's speed, of the cores in cpus if set
                        (`hpl info --cpu` shows it) */
  int32_t n_ctx;     /* context length of every session, in tokens (default 2048) */
  int32_t n_ubatch;  /* prompt micro-batch in tokens, also the stop granularity during prompt
                        evaluation (default 256) */
  int32_t prefault;  /* weights are always memory-mapped; 1: every page is read at load time,
                        so no request pays for page faults; 0 (default): paged in lazily */
  int32_t max_consecutive_failures; /* circuit breaker threshold (default 3) */
  const char* cpus;                 /* pin the compute threads (and the worker) to these CPUs,
                                       e.g. "4-7" or "0,2-3"; NULL or "" (default): no pinning.
                                       A mask the OS refuses or narrows is reported on stderr,
                                       naming the CPUs. */
  const char* cache_type;           /* KV cache rows of every session: NULL or "f16" (default),
                                       "f32", "q8_0" (about half of f16), "q4_0" (about a
                                       quarter); q8_0 / q4_0 need the model's head_dim to be
                                       a multiple of 32 (else HPL_ERR_MODEL at load) */
  /* Speculative decoding (greedy output unchanged; sampling keeps the model's distribution):
   * a draft model with the same vocabulary (each session loads its own), or prompt lookup
   * with n-grams up to `lookup` tokens; not both. Off by default. */
  const char* draft_model; /* path of the draft GGUF; NULL or "" (default): none */
  int32_t lookup;          /* prompt lookup n-gram size; 0 (default): off */
  int32_t draft_max;       /* tokens drafted per step at most (default 16) */
  int32_t draft_min;       /* fewer drafted than this: not verified (default 0) */
} hpl_model_params;

HPL_API hpl_status hpl_model_params_init(hpl_model_params* params);

/* What loading path with params (NULL: defaults) and one session would take, from the file's
 * metadata and tensor table alone (nothing is loaded): weights used in place from the mapping,
 * f32 copies made at load, the session's KV cache (sliding-window layers keep only their
 * window) and forward-pass scratch. kv_bytes and scratch_bytes equal what
 * hpl_memory_info_get() reports for one live session of the loaded model (the KV cache in
 * params->cache_type). For an embedding or rerank model (a bert encoder, or a decoder whose
 * GGUF sets a pooling type) they are its embedder's: an encoder has no KV cache and scratch
 * for one batch of tokens. With params->draft_model the draft model's weights (unless it is
 * the model itself), KV cache and scratch are included. HPL_ERR_MODEL for a bad or unsupported
 * file, HPL_ERR_INVALID_ARGUMENT for an unknown cache type. */
typedef struct hpl_memory_estimate {
  uint64_t weights_mapped_bytes;
  uint64_t weights_converted_bytes;
  uint64_t kv_bytes;
  uint64_t scratch_bytes;
  uint64_t total_bytes;
} hpl_memory_estimate;
HPL_API hpl_status hpl_memory_estimate_get(const char* path, const hpl_model_params* params,
                                           hpl_memory_estimate* out);

/* Loads (and validates) a GGUF model and starts its worker thread. params may be NULL. */
HPL_API hpl_status hpl_model_load(const char* path, const hpl_model_params* params,
                                  hpl_model** out);
/* Stops the running request, ends every queued one with DONE (stopped), joins the worker and
 * frees the handle. HPL_ERR_BUSY while sessions of this model are alive. NULL is OK. */
HPL_API hpl_status hpl_model_unload(hpl_model* model);
/* Circuit breaker: *failed = 1 after max_consecutive_failures failed requests in a row;
 * then hpl_submit() returns HPL_ERR_FAILED_STATE (hpl_last_error() names the last error)
 * until hpl_model_reset(). A request that failed with HPL_ERR_OUT_OF_MEMORY because its
 * model could not be loaded under the memory budget is not counted. */
HPL_API hpl_status hpl_model_failed(hpl_model* model, int32_t* failed);
HPL_API hpl_status hpl_model_reset(hpl_model* model);

/* ---- sessions (conversations) ---- */

HPL_API hpl_status hpl_session_create(hpl_model* model, hpl_session** out);
/* HPL_ERR_BUSY while the session has queued or running requests; HPL_ERR_WOULD_DEADLOCK
 * inside a callback (free it after hpl_wait()). NULL is OK. */
HPL_API hpl_status hpl_session_free(hpl_session* session);
/* The calls below run on the worker in queue order, after the requests submitted before
 * them, and block until done. */
HPL_API hpl_status hpl_session_reset(hpl_session* session); /* start a new conversation */
/* Start over carrying the last keep_last exchanges (re-evaluated at the next turn, except the
 * prefix they share with the old conversation, e.g. the system message, whose KV is kept);
 * use it after HPL_ERR_CONTEXT_FULL. */
HPL_API hpl_status hpl_session_restart(hpl_session* session, int32_t keep_last);
/* Tokens and KV cache to a file, and back. Restoring a file saved from another model fails
 * with HPL_ERR_SESSION_MISMATCH and leaves the session unchanged. */
HPL_API hpl_status hpl_session_save(hpl_session* session, const char* path);
HPL_API hpl_status hpl_session_restore(hpl_session* session, const char* path);

typedef struct hpl_session_info {
  int64_t n_ctx;       /* context length */
  int64_t n_past;      /* tokens in the KV cache */
  int64_t n_tokens;    /* tokens in the conversation */
  int64_t n_exchanges; /* turns so far */
} hpl_session_info;
HPL_API hpl_status hpl_session_info_get(hpl_session* session, hpl_session_info* out);

/* ---- requests ---- */

/* Values outside the ranges (and NaN) are refused by hpl_submit() with
 * HPL_ERR_INVALID_ARGUMENT, e.g. "temperature must be in [0, 2], got -1". */
typedef struct hpl_sampler_params {
  float temperature;     /* [0, 2]; 0: greedy (default 0.8) */
  int32_t top_k;         /* [0, 2^20]; 0: off (default 40) */
  float top_p;           /* (0, 1]; 1: off (default 0.95) */
  float min_p;           /* [0, 1]; 0: off (default 0.05) */
  float repeat_penalty;  /* (0, 10]; 1: off (default 1) */
  int32_t repeat_last_n; /* [0, 2^20]; 0: off (default 64) */
  uint64_t seed;         /* any (default 0) */
} hpl_sampler_params;

typedef struct hpl_chat_message {
  const char* role; /* "system", "user", "assistant" */
  const char* content;
} hpl_chat_message;

typedef struct hpl_request_params {
  /* Exactly one of: a raw prompt (appended to the conversation as is), or chat messages
   * (formatted with the model's chat template; in a session, pass only the new ones). */
  const char* prompt;
  const hpl_chat_message* messages;
  size_t n_messages;
  hpl_sampler_params sampler;
  int32_t max_tokens;              /* >= 1 (default 128) */
  const char* const* stop_strings; /* generation ends before any of these; not emitted */
  size_t n_stop_strings;
  /* Stateless requests (session NULL): 1 (default) reuses the KV of the longest prefix of the
   * prompt that an earlier stateless request of this model left (its own cached state, or up
   * to 4 saved ones, 64 MiB at most, counted in the memory budget, least recently used
   * dropped first): only the rest is evaluated, with the same output (stats.cached_tokens
   * says how many were reused; at least the prompt's last token is always evaluated). 0
   * evaluates the whole prompt. Ignored in a session, which always continues its own cache. */
  int32_t cache_prompt;
  /* Constrained output (at most one; NULL = none): every reply is a sentence of the GBNF
   * grammar (llama.cpp's format, start rule "root") or a JSON value valid against the JSON
   * Schema (the subset engine/grammar_constraint.h names). One that does not compile is
   * refused by hpl_submit with HPL_ERR_INVALID_ARGUMENT and its line:column / JSON pointer. */
  const char* grammar;
  const char* json_schema;
} hpl_request_params;

HPL_API hpl_status hpl_request_params_init(hpl_request_params* params);

typedef enum hpl_event_type {
  HPL_EVENT_QUEUED = 0,
  HPL_EVENT_PROCESSING = 1, /* prompt evaluation started */
  HPL_EVENT_TOKEN = 2,      /* text: a UTF-8-complete piece */
  HPL_EVENT_DONE = 3,       /* stats filled; stats.finish says why */
  HPL_EVENT_ERROR = 4       /* status and text (the message) filled */
} hpl_event_type;

/* Why a request ended, and stats.truncated for each reason. */
typedef enum hpl_finish_reason {
  HPL_FINISH_END_OF_GENERATION = 0, /* the model ended its reply; truncated = 0 */
  HPL_FINISH_MAX_TOKENS = 1,        /* max_tokens were generated; truncated = 0 */
  HPL_FINISH_STOP_STRING = 2,       /* a stop string appeared; truncated = 0 */
  HPL_FINISH_STOPPED = 3,    /* hpl_stop() (also while queued or during prompt evaluation, and
                                hpl_model_unload()): the partial output is kept; truncated = 1 */
  HPL_FINISH_CONTEXT_END = 4 /* the context filled up while generating; truncated = 1 */
} hpl_finish_reason;

typedef struct hpl_stats {
  int32_t prompt_tokens;         /* tokens evaluated for this turn (new tokens only) */
  int32_t completion_tokens;     /* tokens generated */
  double time_to_first_token_ms; /* from prompt evaluation start */
  double prefill_tokens_per_s;
  double decode_tokens_per_s;
  double queue_ms;   /* time spent queued */
  double total_ms;   /* from prompt evaluation start to the end */
  int32_t truncated; /* 1: cut short by hpl_stop() or the context end (FINISH_STOPPED or
                        FINISH_CONTEXT_END); 0 for every other finish reason */
  hpl_finish_reason finish;
  /* Where total_ms went (queue_ms is before it): prompt evaluation, single-token
   * evaluations, sampling; the rest is streaming text and callbacks. */
  double prefill_ms;
  double decode_ms;
  double sampling_ms;
  int32_t cached_tokens; /* stateless requests: prompt tokens whose KV was reused from the
                            prompt cache (not in prompt_tokens); 0 in a session */
  /* Speculative decoding: draft tokens evaluated, and how many of them the model sampled too
   * (acceptance rate = accepted / drafted); 0 when off. decode_tokens_per_s is the
   * effective rate (completion tokens over the time after the prompt). */
  int32_t drafted;
  int32_t accepted;
} hpl_stats;

typedef struct hpl_event {
  hpl_event_type type;
  hpl_request_id id;
  const char* text; /* TOKEN: the piece; ERROR: the message; else "". Valid during the call. */
  size_t text_len;
  hpl_status status; /* ERROR: the code; else HPL_OK */
  hpl_stats stats;   /* DONE (and partial counts for ERROR) */
  /* DONE of an embedding request: n_outputs vectors of dim floats each, row after row
   * (outputs[i * dim + j] is input i's); fewer than the inputs only when stopped (then the
   * first n_outputs inputs'). DONE of a rerank request: n_outputs scores (dim 1) in document
   * order. NULL and 0 for everything else. Valid only during the call: copy. */
  const float* outputs;
  int32_t n_outputs;
  int32_t dim;
} hpl_event;

typedef void (*hpl_event_callback)(const hpl_event* event, void* user_data);

/* Queues a request. session may be NULL (a stateless request). On HPL_OK *out_id is set and
 * the callback gets exactly one terminal event; on any other status no event is delivered. */
HPL_API hpl_status hpl_submit(hpl_model* model, hpl_session* session,
                              const hpl_request_params* params, hpl_event_callback callback,
                              void* user_data, hpl_request_id* out_id);
/* Stops a queued request (it ends with DONE, stopped, at once) or the running one (it ends
 * after its current token or prompt micro-batch, keeping its output). HPL_ERR_NOT_FOUND
 * when the request is unknown or already finished (its terminal callback has returned; a
 * stop that races with the terminal event returns HPL_OK and changes nothing). */
HPL_API hpl_status hpl_stop(hpl_model* model, hpl_request_id id);
/* Waits until the request's terminal event has been delivered; timeout_ms < 0: forever.
 * HPL_ERR_TIMEOUT on timeout. */
HPL_API hpl_status hpl_wait(hpl_model* model, hpl_request_id id, int64_t timeout_ms);
/* Waits until nothing is queued or running. */
HPL_API hpl_status hpl_wait_idle(hpl_model* model);

/* ---- persistent prompt prefix ---- */

/* A fixed prompt prefix (a long system prompt, a few-shot preamble) saved once, so an app's
 * first request after launch skips evaluating it. hpl_prefix_save() evaluates the prompt of
 * prefix (raw text, or chat messages formatted as a stateless request's, assistant prompt
 * included; nothing is generated; sampling fields are ignored) on the model's stateless
 * context and writes its tokens and KV cache to path (the session-file format; written to
 * path.tmp and renamed). hpl_prefix_load() reads such a file into the stateless context: the
 * next stateless requests (session NULL, cache_prompt 1) whose prompt starts with the same
 * tokens evaluate only what follows them (stats.cached_tokens), up to where they differ. It
 * checks the file against the loaded model (HPL_ERR_SESSION_MISMATCH naming both
 * fingerprints, or a prefix longer than n_ctx) and its contents (HPL_ERR_IO: truncated,
 * corrupt, bad checksum). With expect non-NULL the file's tokens must be the start of
 * expect's prompt tokens (HPL_ERR_SESSION_MISMATCH "... differ from token K on: save it
 * again" otherwise, e.g. after the app changed its system prompt); NULL accepts any prefix.
 * *n_tokens (may be NULL) gets the prefix length. Both run on the worker in queue order and
 * block (HPL_ERR_WOULD_DEADLOCK inside a callback). */
HPL_API hpl_status hpl_prefix_save(hpl_model* model, const hpl_request_params* prefix,
                                   const char* path);
HPL_API hpl_status hpl_prefix_load(hpl_model* model, const char* path,
                                   const hpl_request_params* expect, int64_t* n_tokens);

/* ---- embeddings and rerank ---- */

/* What a model does: a generation model generates text and gives embeddings (its pooled
 * hidden states); an embedding model (a bert encoder, or a decoder whose GGUF sets a pooling
 * type) only embeds; a reranker (a cross-encoder with a classification head) only reranks. */
typedef enum hpl_model_kind {
  HPL_MODEL_GENERATE = 0,
  HPL_MODEL_EMBED = 1,
  HPL_MODEL_RERANK = 2
} hpl_model_kind;

typedef struct hpl_model_info {
  hpl_model_kind kind;
  int32_t n_embd;      /* the size of an embedding */
  int32_t n_ctx_embed; /* the longest input of an embedding / rerank request, in tokens */
} hpl_model_info;
HPL_API hpl_status hpl_model_info_get(hpl_model* model, hpl_model_info* out);

/* How token vectors become one vector per text (GGUF pooling_type numbering). */
typedef enum hpl_pooling {
  HPL_POOLING_MODEL = -1, /* the GGUF's pooling_type, else mean (bert) or last (decoders) */
  HPL_POOLING_MEAN = 1,
  HPL_POOLING_CLS = 2, /* the first token's */
  HPL_POOLING_LAST = 3
} hpl_pooling;

typedef struct hpl_embed_params {
  hpl_pooling pooling; /* default HPL_POOLING_MODEL */
  int32_t normalize;   /* 1 (default): each vector has L2 norm 1; 0: as pooled */
  int32_t truncate;    /* 0 (default): an input longer than n_ctx_embed is refused; 1: cut */
} hpl_embed_params;
HPL_API hpl_status hpl_embed_params_init(hpl_embed_params* params);

/* Queues an embedding request: one vector per input text (UTF-8, tokenized with the model's
 * special tokens), evaluated together in groups of up to n_ubatch tokens. params may be NULL.
 * Events: QUEUED, PROCESSING, then DONE with event->outputs, or ERROR; hpl_stop() ends it
 * between groups (DONE, FINISH_STOPPED, the vectors finished so far). Refused here with
 * HPL_ERR_INVALID_ARGUMENT and no event: n_inputs == 0 ("inputs is empty"), a NULL or empty
 * text ("inputs[2] is an empty string"), invalid UTF-8, an input longer than n_ctx_embed
 * without truncate (the message gives both lengths), a reranker. */
HPL_API hpl_status hpl_submit_embed(hpl_model* model, const char* const* inputs, size_t n_inputs,
                                    const hpl_embed_params* params, hpl_event_callback callback,
                                    void* user_data, hpl_request_id* out_id);
/* Queues a rerank request: one relevance score per document for the query (the
 * classification head's output for "[CLS] query [SEP] document [SEP]"; higher is more
 * relevant), in document order. truncate: cut documents that do not fit beside the query, else
 * they are refused. Events and refusals as hpl_submit_embed(); a generation or embedding model
 * is refused ("... with no classification head: it cannot rerank"). */
HPL_API hpl_status hpl_submit_rerank(hpl_model* model, const char* query,
                                     const char* const* documents, size_t n_documents,
                                     int32_t truncate, hpl_event_callback callback, void* user_data,
                                     hpl_request_id* out_id);

/* ---- tokenizer ---- */

/* Text -> token ids with the model's tokenizer, on the calling thread (loads the model if it
 * was unloaded). add_special: BOS/EOS as the model's vocab asks; parse_special: special-token
 * texts in text (e.g. "<start_of_turn>") become their ids. Writes min(capacity, n) ids to
 * tokens (may be NULL when capacity is 0) and sets *n_tokens = n, the full count: call again
 * with a larger buffer when n > capacity. */
HPL_API hpl_status hpl_tokenize(hpl_model* model, const char* text, size_t text_len,
                                int32_t add_special, int32_t parse_special, int32_t* tokens,
                                size_t capacity, size_t* n_tokens);
/* Token ids -> UTF-8 text (invalid sequences repaired to U+FFFD); render_special: control
 * tokens give their text instead of "". Writes min(capacity, n) bytes to buf (no NUL added;
 * buf may be NULL when capacity is 0) and sets *text_len = n; call again when n > capacity.
 * An id outside the vocab is HPL_ERR_INVALID_ARGUMENT naming it. */
HPL_API hpl_status hpl_detokenize(hpl_model* model, const int32_t* tokens, size_t n_tokens,
                                  int32_t render_special, char* buf, size_t capacity,
                                  size_t* text_len);

#ifdef __cplusplus
}
#endif

#endif /* HPL_H_ */
