/* The C API from C99: generation and events, stop (from a callback, queued), blocking calls
 * refused inside callbacks, sessions with save/restore, context-full and the circuit
 * breaker, the memory budget (also switching models under it, and a request waiting for
 * another model's request to end), request validation (sampling ranges, UTF-8), embedding
 * and rerank requests, error codes and messages. Runs native and under qemu. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hpl.h"

static int g_failures = 0;

#define CHECK(cond)                                                                            \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              hpl_last_error());                                                               \
      ++g_failures;                                                                            \
    }                                                                                          \
  } while (0)

#define REQUIRE_OK(call)                                                                 \
  do {                                                                                   \
    hpl_status s_ = (call);                                                              \
    if (s_ != HPL_OK) {                                                                  \
      fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, (int)s_, \
              hpl_last_error());                                                         \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

typedef struct collector {
  hpl_model* model;
  char text[8192];
  size_t len;
  int counts[5]; /* per hpl_event_type */
  int order_ok;  /* QUEUED first, nothing after the terminal event */
  int terminals;
  hpl_event_type terminal_type;
  hpl_status status;
  hpl_stats stats;
  char error[1024];
  int stop_after_tokens;       /* > 0: the callback stops its own request after that many tokens */
  hpl_status wait_in_callback; /* what hpl_wait() returned when called from the callback */
  hpl_session* free_in_done;   /* non-NULL: the DONE callback tries hpl_session_free() on it */
  hpl_status free_in_callback; /* what that returned */
  /* Block the worker in the first token callback until `release` is set. */
  int block_first_token;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int blocked, release;
  float outputs[1024]; /* DONE of an embed / rerank request */
  int n_outputs, dim;
} collector;

static void collector_init(collector* c, hpl_model* m) {
  memset(c, 0, sizeof *c);
  c->model = m;
  c->order_ok = 1;
  c->wait_in_callback = HPL_OK;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static void collector_destroy(collector* c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

static void on_event(const hpl_event* ev, void* user) {
  collector* c = (collector*)user;
  int before = c->counts[0] + c->counts[1] + c->counts[2] + c->counts[3] + c->counts[4];
  if (before == 0 && ev->type != HPL_EVENT_QUEUED) c->order_ok = 0;
  if (c->terminals > 0) c->order_ok = 0;
  c->counts[ev->type]++;
  switch (ev->type) {
    case HPL_EVENT_PROCESSING:
      c->wait_in_callback = hpl_wait(c->model, ev->id, -1);
      break;
    case HPL_EVENT_TOKEN:
      if (c->len + ev->text_len < sizeof c->text) {
        memcpy(c->text + c->len, ev->text, ev->text_len);
        c->len += ev->text_len;
        c->text[c->len] = '\0';
      }
      if (c->stop_after_tokens > 0 && c->counts[HPL_EVENT_TOKEN] == c->stop_after_tokens)
        hpl_stop(c->model, ev->id); /* allowed from inside a callback */
      if (c->block_first_token && c->counts[HPL_EVENT_TOKEN] == 1) {
        pthread_mutex_lock(&c->mu);
        c->blocked = 1;
        pthread_cond_broadcast(&c->cv);
        while (!c->release) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
      }
      break;
    case HPL_EVENT_DONE:
    case HPL_EVENT_ERROR:
      if (c->free_in_done) c->free_in_callback = hpl_session_free(c->free_in_done);
      c->terminals++;
      c->terminal_type = ev->type;
      c->status = ev->status;
      c->stats = ev->stats;
      if (ev->type == HPL_EVENT_ERROR) snprintf(c->error, sizeof c->error, "%s", ev->text);
      c->n_outputs = ev->n_outputs;
      c->dim = ev->dim;
      if (ev->outputs && (size_t)ev->n_outputs * (size_t)ev->dim <= 1024)
        memcpy(c->outputs, ev->outputs, sizeof(float) * (size_t)ev->n_outputs * (size_t)ev->dim);
      else if (ev->outputs || ev->n_outputs != 0)
        c->order_ok = 0; /* outputs without room, or a count without outputs */
      break;
    default:
      break;
  }
}

static hpl_request_params greedy(const char* prompt, int max_tokens) {
  hpl_request_params p;
  hpl_request_params_init(&p);
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  p.sampler.temperature = 0.0f;
  return p;
}

static hpl_model* load(const char* name, int n_ctx) {
  char path[1024];
  snprintf(path, sizeof path, "%s/models/%s", HPL_TEST_DATA_DIR, name);
  hpl_model_params mp;
  REQUIRE_OK(hpl_model_params_init(&mp));
  mp.n_threads = 1;
  mp.cpus = "0"; /* pinned: generation must work the same */
  mp.n_ctx = n_ctx;
  mp.n_ubatch = 16;
  hpl_model* m = NULL;
  REQUIRE_OK(hpl_model_load(path, &mp, &m));
  return m;
}

static void test_errors_and_version(void) {
  int major = -1;
  const char* v = NULL;
  REQUIRE_OK(hpl_version(&major, NULL, NULL, &v));
  CHECK(major == HPL_VERSION_MAJOR && v && strcmp(v, "0.1.0") == 0);
  const char* name = NULL;
  REQUIRE_OK(hpl_status_name(HPL_ERR_CONTEXT_FULL, &name));
  CHECK(strcmp(name, "context full") == 0);
  hpl_model* m = (hpl_model*)0x1;
  CHECK(hpl_model_load(HPL_TEST_DATA_DIR "/models/missing.gguf", NULL, &m) == HPL_ERR_IO);
  CHECK(m == NULL);
  CHECK(strstr(hpl_last_error(), "missing.gguf") != NULL);
  CHECK(hpl_model_load(HPL_TEST_DATA_DIR "/models/MODELS-SOURCES.md", NULL, &m) != HPL_OK);
  CHECK(hpl_model_load(NULL, NULL, &m) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strlen(hpl_last_error()) > 0);
  hpl_model_params mp;
  hpl_model_params_init(&mp);
  mp.n_ctx = 0;
  CHECK(hpl_model_load(HPL_TEST_DATA_DIR "/models/stories260K.gguf", &mp, &m) ==
        HPL_ERR_INVALID_ARGUMENT);
  hpl_model_params_init(&mp);
  CHECK(mp.n_threads == 0 && mp.cpus == NULL); /* 0: the CPU topology's default */
  mp.cpus = "3-1";
  CHECK(hpl_model_load(HPL_TEST_DATA_DIR "/models/stories260K.gguf", &mp, &m) ==
        HPL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hpl_last_error(), "3-1") != NULL);
  CHECK(hpl_model_unload(NULL) == HPL_OK);
  CHECK(hpl_session_free(NULL) == HPL_OK);
}

static void test_generation(hpl_model* m) {
  collector c;
  collector_init(&c, m);
  hpl_request_params p = greedy("Once upon a time", 20);
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  CHECK(id > 0);
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.order_ok && c.terminals == 1 && c.terminal_type == HPL_EVENT_DONE);
  CHECK(c.counts[HPL_EVENT_QUEUED] == 1 && c.counts[HPL_EVENT_PROCESSING] == 1);
  CHECK(strncmp(c.text, ", there was a little girl named Lily.", 37) == 0);
  CHECK(c.stats.prompt_tokens == 5 && c.stats.completion_tokens > 0);
  CHECK(c.stats.finish == HPL_FINISH_MAX_TOKENS && c.stats.truncated == 0);
  CHECK(c.stats.decode_tokens_per_s > 0 && c.stats.prefill_tokens_per_s > 0);
  /* the timing split: each part measured, together within total_ms */
  CHECK(c.stats.prefill_ms > 0 && c.stats.decode_ms > 0 && c.stats.sampling_ms > 0);
  CHECK(c.stats.prefill_ms + c.stats.decode_ms + c.stats.sampling_ms <=
        c.stats.total_ms * 1.000001);
  CHECK(c.stats.queue_ms >= 0);
  CHECK(c.wait_in_callback == HPL_ERR_WOULD_DEADLOCK);
  CHECK(hpl_stop(m, id) == HPL_ERR_NOT_FOUND);
  CHECK(hpl_wait(m, id, 0) == HPL_OK);
  collector_destroy(&c);

  /* Bad requests fail at submit, with no event. */
  collector_init(&c, m);
  hpl_request_params bad = greedy("x", 0);
  CHECK(hpl_submit(m, NULL, &bad, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  bad = greedy(NULL, 4);
  CHECK(hpl_submit(m, NULL, &bad, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(c.counts[HPL_EVENT_QUEUED] == 0);
  collector_destroy(&c);

  /* Stop strings and chat messages. */
  collector_init(&c, m);
  p = greedy("Once upon a time", 40);
  const char* stops[] = {"Lily"};
  p.stop_strings = stops;
  p.n_stop_strings = 1;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.stats.finish == HPL_FINISH_STOP_STRING && c.stats.truncated == 0);
  CHECK(strcmp(c.text, ", there was a little girl named ") == 0);
  collector_destroy(&c);
  collector_init(&c, m);
  hpl_chat_message msgs[2] = {{"system", "You tell stories."}, {"user", "Tell me a story."}};
  hpl_request_params_init(&p);
  p.messages = msgs;
  p.n_messages = 2;
  p.max_tokens = 8;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.terminal_type == HPL_EVENT_DONE && c.stats.completion_tokens > 0);
  collector_destroy(&c);
}

/* Submits p expecting HPL_ERR_INVALID_ARGUMENT, no event, and a message containing want. */
static void expect_invalid(hpl_model* m, const hpl_request_params* p, const char* want) {
  collector c;
  collector_init(&c, m);
  hpl_request_id id = 7;
  const hpl_status st = hpl_submit(m, NULL, p, on_event, &c, &id);
  CHECK(st == HPL_ERR_INVALID_ARGUMENT);
  if (st == HPL_OK) hpl_wait(m, id, -1); /* accepted: c must outlive its events */
  if (strstr(hpl_last_error(), want) == NULL)
    fprintf(stderr, "want '%s' in '%s'\n", want, hpl_last_error());
  CHECK(strstr(hpl_last_error(), want) != NULL);
  CHECK(id == 0 && c.counts[HPL_EVENT_QUEUED] == 0);
  collector_destroy(&c);
}

/* The shared request checks (runtime/request_checks.h): the same ranges and messages as the
 * CLI and the server. */
static void test_validation(hpl_model* m) {
  hpl_request_params p = greedy("Once upon a time", 4);
  p.sampler.temperature = -1.0f;
  expect_invalid(m, &p, "temperature must be in [0, 2], got -1");
  p = greedy("Once upon a time", 4);
  p.sampler.top_p = 2.0f;
  expect_invalid(m, &p, "top_p must be in (0, 1], got 2");
  p = greedy("Once upon a time", 4);
  p.sampler.top_k = -3;
  expect_invalid(m, &p, "top_k must be in [0, 1048576], got -3");
  p = greedy("Once upon a time", 4);
  p.sampler.min_p = 5.0f;
  expect_invalid(m, &p, "min_p must be in [0, 1], got 5");
  p = greedy("Once upon a time", -5);
  expect_invalid(m, &p, "max_tokens must be in [1, 2147483647], got -5");
  /* Invalid UTF-8 is refused, naming the field and the byte offset. */
  p = greedy("Once \xff upon", 4);
  expect_invalid(m, &p, "prompt is not valid UTF-8 at byte 5");
  p = greedy("caf\xc3", 4); /* truncated 2-byte sequence at the end */
  expect_invalid(m, &p, "prompt is not valid UTF-8 at byte 3");
  p = greedy("\xed\xa0\x80", 4); /* a surrogate (U+D800) */
  expect_invalid(m, &p, "prompt is not valid UTF-8 at byte 0");
  hpl_chat_message msgs[2] = {{"user", "Hello"}, {"user", "ok \xc0\xaf"}}; /* overlong '/' */
  hpl_request_params_init(&p);
  p.messages = msgs;
  p.n_messages = 2;
  expect_invalid(m, &p, "messages[1].content is not valid UTF-8 at byte 3");
  p = greedy("Once upon a time", 4);
  const char* stops[] = {"ok", "\xf5x"};
  p.stop_strings = stops;
  p.n_stop_strings = 2;
  expect_invalid(m, &p, "stop_strings[1] is not valid UTF-8 at byte 0");
  /* Valid multi-byte text is accepted. */
  collector c;
  collector_init(&c, m);
  p = greedy("Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 2);
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
}

/* Constrained output: a grammar and a JSON schema shape every reply; bad ones fail at submit
 * with their position. */
static void test_constrained(hpl_model* m) {
  hpl_request_params p = greedy("Once upon a time", 30);
  p.grammar = "root ::= (\"yes\" | \"no\") \" \" [0-9]{2}";
  p.sampler.temperature = 1.0f;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    collector c;
    collector_init(&c, m);
    p.sampler.seed = seed;
    hpl_request_id id = 0;
    REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
    REQUIRE_OK(hpl_wait(m, id, -1));
    CHECK(c.terminal_type == HPL_EVENT_DONE && c.stats.finish == HPL_FINISH_END_OF_GENERATION);
    const size_t n = strlen(c.text);
    CHECK((strncmp(c.text, "yes ", 4) == 0 && n == 6) ||
          (strncmp(c.text, "no ", 3) == 0 && n == 5));
    CHECK(n >= 2 && c.text[n - 1] >= '0' && c.text[n - 1] <= '9');
    collector_destroy(&c);
  }
  collector c;
  collector_init(&c, m);
  p = greedy("Once upon a time", 60);
  p.json_schema = "{\"enum\": [\"red\", [1, 2], {\"a\": null}]}";
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(strcmp(c.text, "\"red\"") == 0 || strcmp(c.text, "[1,2]") == 0 ||
        strcmp(c.text, "{\"a\":null}") == 0);
  collector_destroy(&c);
  p = greedy("Once upon a time", 4);
  p.grammar = "root ::= \"a\" | [b-";
  expect_invalid(m, &p, "grammar: line 1, column 16: unterminated character class");
  p = greedy("Once upon a time", 4);
  p.json_schema = "{\"type\": \"object\", \"required\": [\"x\"], \"additionalProperties\": false}";
  expect_invalid(m, &p,
                 "json_schema: schema at #/required/0: required property 'x' is not in properties");
}

static void test_stop(hpl_model* m) {
  /* Active: the callback stops its own request after 3 tokens; the partial text is kept. */
  collector a;
  collector_init(&a, m);
  a.stop_after_tokens = 3;
  hpl_request_params p = greedy("Once upon a time", 200);
  p.sampler.temperature = 0.9f;
  hpl_request_id ida = 0;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &a, &ida));
  REQUIRE_OK(hpl_wait(m, ida, -1));
  CHECK(a.terminal_type == HPL_EVENT_DONE);
  if (a.stats.finish != HPL_FINISH_END_OF_GENERATION) {
    CHECK(a.stats.finish == HPL_FINISH_STOPPED && a.stats.truncated == 1);
    CHECK(a.stats.completion_tokens == 3 && a.len > 0);
  }
  collector_destroy(&a);

  /* Queued: the worker is held inside A's first token callback, so B stays queued. */
  collector_init(&a, m);
  a.block_first_token = 1;
  collector b;
  collector_init(&b, m);
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &a, &ida));
  pthread_mutex_lock(&a.mu);
  while (!a.blocked) pthread_cond_wait(&a.cv, &a.mu);
  pthread_mutex_unlock(&a.mu);
  hpl_request_id idb = 0;
  hpl_request_params pb = greedy("Once upon a time", 8);
  REQUIRE_OK(hpl_submit(m, NULL, &pb, on_event, &b, &idb));
  CHECK(idb > ida);
  REQUIRE_OK(hpl_stop(m, idb));
  /* B's DONE was delivered on this thread, inside hpl_stop(). */
  CHECK(b.terminals == 1 && b.terminal_type == HPL_EVENT_DONE);
  CHECK(b.stats.finish == HPL_FINISH_STOPPED && b.stats.completion_tokens == 0);
  CHECK(b.counts[HPL_EVENT_PROCESSING] == 0 && b.order_ok);
  REQUIRE_OK(hpl_stop(m, ida));
  pthread_mutex_lock(&a.mu);
  a.release = 1;
  pthread_cond_broadcast(&a.cv);
  pthread_mutex_unlock(&a.mu);
  REQUIRE_OK(hpl_wait(m, ida, -1));
  CHECK(a.terminals == 1 && a.stats.finish == HPL_FINISH_STOPPED && a.stats.completion_tokens == 1);
  CHECK(a.order_ok);
  collector_destroy(&a);
  collector_destroy(&b);
}

static void run_turn(hpl_model* m, hpl_session* s, const char* prompt, int max_tokens,
                     collector* c) {
  collector_init(c, m);
  hpl_request_params p = greedy(prompt, max_tokens);
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit(m, s, &p, on_event, c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
}

static void test_sessions(hpl_model* m, hpl_model* other) {
  char file[512];
  snprintf(file, sizeof file, "/tmp/hpl_c_api_test.%ld.session", (long)getpid());
  hpl_session* s = NULL;
  REQUIRE_OK(hpl_session_create(m, &s));
  collector c;
  run_turn(m, s, "Once upon a time", 12, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
  REQUIRE_OK(hpl_session_save(s, file));
  run_turn(m, s, " One day,", 16, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  char uninterrupted[8192];
  snprintf(uninterrupted, sizeof uninterrupted, "%s", c.text);
  int new_tokens = c.stats.prompt_tokens;
  collector_destroy(&c);

  hpl_session* r = NULL;
  REQUIRE_OK(hpl_session_create(m, &r));
  REQUIRE_OK(hpl_session_restore(r, file));
  hpl_session_info info;
  REQUIRE_OK(hpl_session_info_get(r, &info));
  CHECK(info.n_exchanges == 1 && info.n_past > 5 && info.n_ctx == 256);
  run_turn(m, r, " One day,", 16, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  CHECK(strcmp(c.text, uninterrupted) == 0);
  CHECK(c.stats.prompt_tokens == new_tokens);
  collector_destroy(&c);

  hpl_session* o = NULL;
  REQUIRE_OK(hpl_session_create(other, &o));
  CHECK(hpl_session_restore(o, file) == HPL_ERR_SESSION_MISMATCH);
  CHECK(strstr(hpl_last_error(), "another model") != NULL);
  CHECK(hpl_session_restore(o, "/nonexistent/dir/x.session") == HPL_ERR_IO);
  CHECK(hpl_session_save(o, "/nonexistent/dir/x.session") == HPL_ERR_IO);

  /* A session belongs to its model. */
  hpl_request_params p = greedy("x", 4);
  hpl_request_id id = 0;
  CHECK(hpl_submit(m, o, &p, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);

  hpl_memory_info mem;
  REQUIRE_OK(hpl_memory_info_get(m, &mem));
  CHECK(mem.model_bytes > 0 && mem.kv_bytes > 0 && mem.loaded_bytes >= mem.model_bytes);

  CHECK(hpl_model_unload(other) == HPL_ERR_BUSY);

  /* hpl_session_free() is refused inside a callback, even for a session whose request has
   * just ended (it would destroy the context the worker still owns). */
  collector_init(&c, m);
  c.free_in_done = s;
  p = greedy(" The end.", 4);
  REQUIRE_OK(hpl_submit(m, s, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  CHECK(c.free_in_callback == HPL_ERR_WOULD_DEADLOCK);
  collector_destroy(&c);
  if (c.free_in_callback == HPL_OK) REQUIRE_OK(hpl_session_create(m, &s)); /* it was freed */
  REQUIRE_OK(hpl_session_info_get(s, &info));                              /* still alive */
  REQUIRE_OK(hpl_session_reset(s));
  REQUIRE_OK(hpl_session_info_get(s, &info));
  CHECK(info.n_tokens == 0);
  REQUIRE_OK(hpl_session_free(o));
  REQUIRE_OK(hpl_session_free(r));
  REQUIRE_OK(hpl_session_free(s));
  remove(file);
}

/* A saved prompt prefix loaded into a freshly loaded model: its first stateless request
 * evaluates only what follows the prefix, and says the same as without it. */
static void test_prefix_file(hpl_model* other) {
  char file[512];
  snprintf(file, sizeof file, "/tmp/hpl_c_api_test.%ld.prefix", (long)getpid());
  const char* preamble = "Once upon a time, there was a little girl named Lily. She";
  const char* prompt = "Once upon a time, there was a little girl named Lily. She loved to";
  hpl_model* a = load("stories260K.gguf", 256);
  hpl_request_params pre = greedy(preamble, 1);
  REQUIRE_OK(hpl_prefix_save(a, &pre, file));
  REQUIRE_OK(hpl_model_unload(a));

  /* Without the prefix (cache_prompt 0): the reference answer. */
  hpl_model* b = load("stories260K.gguf", 256);
  collector c;
  collector_init(&c, b);
  hpl_request_params p = greedy(prompt, 12);
  p.cache_prompt = 0;
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit(b, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(b, id, -1));
  char want[8192];
  snprintf(want, sizeof want, "%s", c.text);
  const int n_prompt = c.stats.prompt_tokens;
  CHECK(c.stats.cached_tokens == 0);
  collector_destroy(&c);
  REQUIRE_OK(hpl_model_unload(b));

  hpl_model* m = load("stories260K.gguf", 256);
  int64_t n = 0;
  hpl_request_params expect = greedy(preamble, 1);
  REQUIRE_OK(hpl_prefix_load(m, file, &expect, &n));
  CHECK(n > 5 && n < n_prompt);
  collector_init(&c, m);
  p.cache_prompt = 1;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  CHECK(strcmp(c.text, want) == 0);
  CHECK(c.stats.cached_tokens == (int32_t)n);
  CHECK(c.stats.prompt_tokens + c.stats.cached_tokens == n_prompt);
  collector_destroy(&c);

  /* Another prefix than the one expected, another model, no file. */
  expect = greedy("The dog ran.", 1);
  CHECK(hpl_prefix_load(m, file, &expect, NULL) == HPL_ERR_SESSION_MISMATCH);
  CHECK(strstr(hpl_last_error(), "save it again") != NULL);
  CHECK(hpl_prefix_load(other, file, NULL, NULL) == HPL_ERR_SESSION_MISMATCH);
  CHECK(strstr(hpl_last_error(), "another model") != NULL);
  CHECK(hpl_prefix_load(m, "/nonexistent/dir/x.prefix", NULL, NULL) == HPL_ERR_IO);
  REQUIRE_OK(hpl_model_unload(m));
  remove(file);
}

static void test_context_full_and_breaker(void) {
  hpl_model* m = load("stories260K.gguf", 32);
  const char* longp =
      "Once upon a time there was a girl. Once upon a time there was a boy. Once upon a time";
  for (int i = 0; i < 3; ++i) {
    collector c;
    run_turn(m, NULL, longp, 8, &c);
    CHECK(c.terminal_type == HPL_EVENT_ERROR && c.status == HPL_ERR_CONTEXT_FULL);
    CHECK(strstr(c.error, "context full: need ") != NULL && strstr(c.error, "have 32") != NULL);
    CHECK(c.counts[HPL_EVENT_PROCESSING] == 0);
    collector_destroy(&c);
  }
  int32_t failed = 0;
  REQUIRE_OK(hpl_model_failed(m, &failed));
  CHECK(failed == 1);
  collector c;
  collector_init(&c, m);
  hpl_request_params p = greedy("Once", 4);
  hpl_request_id id = 0;
  CHECK(hpl_submit(m, NULL, &p, on_event, &c, &id) == HPL_ERR_FAILED_STATE);
  CHECK(strstr(hpl_last_error(), "context full") != NULL);
  CHECK(c.counts[HPL_EVENT_QUEUED] == 0);
  collector_destroy(&c);
  REQUIRE_OK(hpl_model_reset(m));
  run_turn(m, NULL, "Once", 4, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
  REQUIRE_OK(hpl_model_unload(m));
}

static void test_prefaulted_load(void) {
  hpl_model_params mp;
  REQUIRE_OK(hpl_model_params_init(&mp));
  mp.n_threads = 1;
  mp.n_ctx = 64;
  mp.prefault = 1; /* every page read at load time */
  hpl_model* m = NULL;
  REQUIRE_OK(hpl_model_load(HPL_TEST_DATA_DIR "/models/stories260K.gguf", &mp, &m));
  collector c;
  run_turn(m, NULL, "Once upon a time", 8, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE && strncmp(c.text, ", there was", 11) == 0);
  collector_destroy(&c);
  REQUIRE_OK(hpl_model_unload(m));
}

static void test_budget(void) {
  /* A budget too small for any model: loading fails with the sizes, nothing else changes. */
  REQUIRE_OK(hpl_set_memory_budget(1000));
  hpl_model* m = NULL;
  CHECK(hpl_model_load(HPL_TEST_DATA_DIR "/models/stories260K.gguf", NULL, &m) ==
        HPL_ERR_OUT_OF_MEMORY);
  CHECK(strstr(hpl_last_error(), "memory budget") != NULL);
  REQUIRE_OK(hpl_set_memory_budget(0));
  hpl_memory_info mem;
  REQUIRE_OK(hpl_memory_info_get(NULL, &mem));
  CHECK(mem.budget_bytes == 0);
}

static void test_memory_estimate(void) {
  /* The estimate, from the file alone, equals what one live session allocates. */
  const char* path = HPL_TEST_DATA_DIR "/models/TinyLLama-v0.Q4_0.from-ggmlv3.gguf";
  hpl_model_params mp;
  REQUIRE_OK(hpl_model_params_init(&mp));
  mp.n_ctx = 200;
  mp.n_ubatch = 16;
  mp.n_threads = 2;
  hpl_memory_estimate est;
  REQUIRE_OK(hpl_memory_estimate_get(path, &mp, &est));
  CHECK(est.weights_mapped_bytes > 0 && est.kv_bytes > 0 && est.scratch_bytes > 0);
  CHECK(est.total_bytes ==
        est.weights_mapped_bytes + est.weights_converted_bytes + est.kv_bytes + est.scratch_bytes);
  hpl_model* m = NULL;
  REQUIRE_OK(hpl_model_load(path, &mp, &m));
  hpl_session* s = NULL;
  REQUIRE_OK(hpl_session_create(m, &s));
  hpl_memory_info mem;
  REQUIRE_OK(hpl_memory_info_get(m, &mem));
  CHECK(mem.kv_bytes == est.kv_bytes);
  CHECK(mem.scratch_bytes == est.scratch_bytes);
  REQUIRE_OK(hpl_session_free(s));
  REQUIRE_OK(hpl_model_unload(m));
  mp.cache_type = "q9_0";
  CHECK(hpl_memory_estimate_get(path, &mp, &est) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hpl_last_error(), "q9_0") != NULL);
  CHECK(hpl_model_load(path, &mp, &m) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(hpl_memory_estimate_get("/nonexistent.gguf", NULL, &est) == HPL_ERR_MODEL);
  CHECK(strstr(hpl_last_error(), "/nonexistent.gguf") != NULL);
}

static void test_tokenize(hpl_model* m) {
  /* "Once upon a time" -> BOS + 4 ids; a short buffer gets a prefix and the full count. */
  const char* text = "Once upon a time";
  int32_t ids[16];
  size_t n = 0;
  REQUIRE_OK(hpl_tokenize(m, text, strlen(text), 1, 0, ids, 16, &n));
  CHECK(n == 5 && ids[0] == 1);
  int32_t two[2] = {0, 0};
  size_t n2 = 0;
  REQUIRE_OK(hpl_tokenize(m, text, strlen(text), 1, 0, two, 2, &n2));
  CHECK(n2 == 5 && two[0] == ids[0] && two[1] == ids[1]);
  REQUIRE_OK(hpl_tokenize(m, text, strlen(text), 0, 0, NULL, 0, &n2));
  CHECK(n2 == 4);
  char buf[64];
  size_t len = 0;
  REQUIRE_OK(hpl_detokenize(m, ids, n, 0, buf, sizeof buf, &len));
  CHECK(len == strlen(text) && memcmp(buf, text, len) == 0);
  REQUIRE_OK(hpl_detokenize(m, ids, n, 0, buf, 4, &len));
  CHECK(len == strlen(text) && memcmp(buf, "Once", 4) == 0);
  const int32_t bad[2] = {1, 1 << 30};
  CHECK(hpl_detokenize(m, bad, 2, 0, buf, sizeof buf, &len) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hpl_last_error(), "outside the vocab") != NULL);
  CHECK(hpl_tokenize(m, NULL, 3, 1, 0, ids, 16, &n) == HPL_ERR_INVALID_ARGUMENT);
}

static uint64_t model_size(const char* name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/models/%s", HPL_TEST_DATA_DIR, name);
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "cannot stat %s\n", path);
    exit(1);
  }
  return (uint64_t)st.st_size;
}

#define MODEL_A "stories260K.gguf"
#define MODEL_B "TinyStories-656K.f16.gguf"
#define MODEL_C "tinystories-656k-q8_0.gguf"

/* Models that ran stateless requests without a budget are idle: a budget set afterwards may
 * evict them to load another model. */
static void test_budget_set_after_requests(void) {
  REQUIRE_OK(hpl_set_memory_budget(0));
  hpl_model* a = load(MODEL_A, 64);
  hpl_model* b = load(MODEL_B, 64);
  collector c;
  run_turn(a, NULL, "Once upon a time", 2, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
  run_turn(b, NULL, "Once upon a time", 2, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
  REQUIRE_OK(hpl_wait_idle(a));
  REQUIRE_OK(hpl_wait_idle(b));
  REQUIRE_OK(hpl_set_memory_budget(model_size(MODEL_B) + model_size(MODEL_C) + 65536));
  hpl_model* cm = NULL;
  char path[1024];
  snprintf(path, sizeof path, "%s/models/%s", HPL_TEST_DATA_DIR, MODEL_C);
  hpl_model_params mp;
  REQUIRE_OK(hpl_model_params_init(&mp));
  mp.n_threads = 1;
  mp.n_ctx = 64;
  CHECK(hpl_model_load(path, &mp, &cm) == HPL_OK); /* was OUT_OF_MEMORY "(A, B)" */
  hpl_memory_info mem;
  REQUIRE_OK(hpl_memory_info_get(a, &mem));
  CHECK(mem.model_bytes == 0 && mem.loaded_bytes <= mem.budget_bytes);
  /* a's handle still works: its next request loads it again, evicting an idle model. */
  run_turn(a, NULL, "Once upon a time", 2, &c);
  CHECK(c.terminal_type == HPL_EVENT_DONE);
  collector_destroy(&c);
  REQUIRE_OK(hpl_model_unload(cm));
  REQUIRE_OK(hpl_model_unload(b));
  REQUIRE_OK(hpl_model_unload(a));
  REQUIRE_OK(hpl_set_memory_budget(0));
}

/* Switching models under a budget that holds two of three: stateless requests round-robin
 * A, B, C, each waited for (hpl_wait, then hpl_wait_idle, alternately). A request must never
 * fail because the model whose request just finished still counts as in use. */
static void test_budget_round_robin(void) {
  REQUIRE_OK(hpl_set_memory_budget(0));
  const char* names[3] = {MODEL_A, MODEL_B, MODEL_C};
  hpl_model* m[3];
  for (int i = 0; i < 3; ++i) { /* default parameters: a context takes a while to free */
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", HPL_TEST_DATA_DIR, names[i]);
    REQUIRE_OK(hpl_model_load(path, NULL, &m[i]));
  }
  REQUIRE_OK(hpl_set_memory_budget(model_size(MODEL_A) + model_size(MODEL_B) + 65536));
  int failures = 0;
  char first_error[1024] = "";
  const int n = 150;
  for (int r = 0; r < n; ++r) {
    hpl_model* mm = m[r % 3];
    collector c;
    collector_init(&c, mm);
    hpl_request_params p = greedy("Once upon a time", 2);
    hpl_request_id id = 0;
    REQUIRE_OK(hpl_submit(mm, NULL, &p, on_event, &c, &id));
    if (r % 2)
      REQUIRE_OK(hpl_wait_idle(mm));
    else
      REQUIRE_OK(hpl_wait(mm, id, -1));
    if (c.terminal_type != HPL_EVENT_DONE) {
      if (!failures) snprintf(first_error, sizeof first_error, "%s", c.error);
      ++failures;
    }
    collector_destroy(&c);
  }
  if (failures) fprintf(stderr, "%d of %d requests failed; first: %s\n", failures, n, first_error);
  CHECK(failures == 0);
  for (int i = 0; i < 3; ++i) {
    int32_t failed = 1;
    REQUIRE_OK(hpl_model_failed(m[i], &failed));
    CHECK(failed == 0);
  }
  for (int i = 0; i < 3; ++i) REQUIRE_OK(hpl_model_unload(m[i]));
  REQUIRE_OK(hpl_set_memory_budget(0));
}

/* Embeddings from a generation model (pooled hidden states): events, one unit vector per
 * input, the same text giving the same vector; refusals with messages; stop while queued. */
static void test_embed(hpl_model* m) {
  hpl_model_info info;
  REQUIRE_OK(hpl_model_info_get(m, &info));
  CHECK(info.kind == HPL_MODEL_GENERATE && info.n_embd > 0 && info.n_ctx_embed == 256);
  const char* texts[3] = {"Once upon a time", "The cat sat on the mat.", "Once upon a time"};
  collector c;
  collector_init(&c, m);
  hpl_request_id id = 0;
  REQUIRE_OK(hpl_submit_embed(m, texts, 3, NULL, on_event, &c, &id));
  REQUIRE_OK(hpl_wait(m, id, -1));
  CHECK(c.order_ok && c.terminal_type == HPL_EVENT_DONE && c.terminals == 1);
  CHECK(c.counts[HPL_EVENT_QUEUED] == 1 && c.counts[HPL_EVENT_PROCESSING] == 1 &&
        c.counts[HPL_EVENT_TOKEN] == 0);
  CHECK(c.n_outputs == 3 && c.dim == info.n_embd);
  for (int i = 0; i < c.n_outputs && c.dim == info.n_embd; ++i) {
    double norm = 0;
    for (int j = 0; j < c.dim; ++j)
      norm += (double)c.outputs[i * c.dim + j] * c.outputs[i * c.dim + j];
    CHECK(norm - 1.0 < 1e-4 && norm - 1.0 > -1e-4);
  }
  if (c.dim == info.n_embd) {
    CHECK(memcmp(c.outputs, c.outputs + 2 * c.dim, sizeof(float) * (size_t)c.dim) == 0);
    CHECK(memcmp(c.outputs, c.outputs + c.dim, sizeof(float) * (size_t)c.dim) != 0);
  }
  CHECK(c.stats.prompt_tokens > 0);
  collector_destroy(&c);

  /* Refused at submit, naming the problem; no event. */
  hpl_embed_params ep;
  REQUIRE_OK(hpl_embed_params_init(&ep));
  CHECK(ep.pooling == HPL_POOLING_MODEL && ep.normalize == 1 && ep.truncate == 0);
  collector_init(&c, m);
  CHECK(hpl_submit_embed(m, texts, 0, &ep, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(hpl_last_error(), "inputs is empty: give at least one text") == 0);
  const char* with_null[2] = {"a", NULL};
  CHECK(hpl_submit_embed(m, with_null, 2, &ep, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(hpl_last_error(), "inputs[1] is NULL") == 0);
  const char* with_empty[2] = {"a", ""};
  CHECK(hpl_submit_embed(m, with_empty, 2, &ep, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(hpl_last_error(), "inputs[1] is an empty string") == 0);
  ep.pooling = (hpl_pooling)0; /* none: no vector per text */
  CHECK(hpl_submit_embed(m, texts, 1, &ep, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hpl_last_error(), "pooling must be") != NULL);
  CHECK(hpl_submit_rerank(m, "cat", texts, 2, 0, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(strstr(hpl_last_error(), "generation model with no classification head") != NULL);
  CHECK(hpl_submit_rerank(m, "", texts, 2, 0, on_event, &c, &id) == HPL_ERR_INVALID_ARGUMENT);
  CHECK(c.counts[HPL_EVENT_QUEUED] == 0);
  collector_destroy(&c);

  /* Stopped while queued behind a generation held at its first token: DONE (stopped). */
  collector gen, emb;
  collector_init(&gen, m);
  collector_init(&emb, m);
  gen.block_first_token = 1;
  hpl_request_params p = greedy("Once upon a time", 4);
  hpl_request_id gid = 0, eid = 0;
  REQUIRE_OK(hpl_submit(m, NULL, &p, on_event, &gen, &gid));
  pthread_mutex_lock(&gen.mu);
  while (!gen.blocked) pthread_cond_wait(&gen.cv, &gen.mu);
  pthread_mutex_unlock(&gen.mu);
  REQUIRE_OK(hpl_submit_embed(m, texts, 3, NULL, on_event, &emb, &eid));
  REQUIRE_OK(hpl_stop(m, eid));
  pthread_mutex_lock(&gen.mu);
  gen.release = 1;
  pthread_cond_broadcast(&gen.cv);
  pthread_mutex_unlock(&gen.mu);
  REQUIRE_OK(hpl_wait_idle(m));
  CHECK(gen.terminal_type == HPL_EVENT_DONE);
  CHECK(emb.terminal_type == HPL_EVENT_DONE && emb.stats.finish == HPL_FINISH_STOPPED);
  CHECK(emb.counts[HPL_EVENT_PROCESSING] == 0 && emb.n_outputs == 0 && emb.order_ok);
  collector_destroy(&gen);
  collector_destroy(&emb);
}

/* A budget with room for one of two models: a request for the unloaded one waits (queued)
 * while the other model's request runs, then loads and succeeds. */
static void test_budget_request_waits(void) {
  REQUIRE_OK(hpl_set_memory_budget(0));
  hpl_model* a = load(MODEL_A, 64);
  hpl_model* b = load(MODEL_B, 64);
  const uint64_t one =
      model_size(MODEL_A) > model_size(MODEL_B) ? model_size(MODEL_A) : model_size(MODEL_B);
  REQUIRE_OK(hpl_set_memory_budget(one + 65536));
  collector gen, emb;
  collector_init(&gen, a);
  collector_init(&emb, b);
  gen.block_first_token = 1;
  hpl_request_params p = greedy("Once upon a time", 4);
  hpl_request_id gid = 0, eid = 0;
  REQUIRE_OK(hpl_submit(a, NULL, &p, on_event, &gen, &gid));
  pthread_mutex_lock(&gen.mu);
  while (!gen.blocked) pthread_cond_wait(&gen.cv, &gen.mu);
  pthread_mutex_unlock(&gen.mu);
  const char* texts[2] = {"Once upon a time", "Lily went to the park"};
  REQUIRE_OK(hpl_submit_embed(b, texts, 2, NULL, on_event, &emb, &eid));
  CHECK(hpl_wait(b, eid, 300) == HPL_ERR_TIMEOUT); /* waiting for a's room, not failed */
  CHECK(emb.terminals == 0);
  hpl_memory_info mem;
  REQUIRE_OK(hpl_memory_info_get(b, &mem));
  CHECK(mem.model_bytes == 0);
  pthread_mutex_lock(&gen.mu);
  gen.release = 1;
  pthread_cond_broadcast(&gen.cv);
  pthread_mutex_unlock(&gen.mu);
  REQUIRE_OK(hpl_wait(b, eid, -1));
  REQUIRE_OK(hpl_wait(a, gid, -1));
  CHECK(gen.terminal_type == HPL_EVENT_DONE);
  CHECK(emb.terminal_type == HPL_EVENT_DONE && emb.n_outputs == 2);
  if (emb.terminal_type != HPL_EVENT_DONE) fprintf(stderr, "embed failed: %s\n", emb.error);
  REQUIRE_OK(hpl_memory_info_get(b, &mem));
  CHECK(mem.model_bytes > 0 && mem.loaded_bytes <= mem.budget_bytes);
  collector_destroy(&gen);
  collector_destroy(&emb);
  REQUIRE_OK(hpl_model_unload(b));
  REQUIRE_OK(hpl_model_unload(a));
  REQUIRE_OK(hpl_set_memory_budget(0));
}

int main(void) {
  test_errors_and_version();
  hpl_model* m = load("stories260K.gguf", 256);
  hpl_model* other = load("TinyStories-656K.f16.gguf", 256);
  test_generation(m);
  test_validation(m);
  test_constrained(m);
  test_stop(m);
  test_sessions(m, other);
  test_tokenize(m);
  test_prefix_file(other);
  test_embed(m);
  REQUIRE_OK(hpl_model_unload(other));
  REQUIRE_OK(hpl_model_unload(m));
  test_context_full_and_breaker();
  test_prefaulted_load();
  test_budget();
  test_memory_estimate();
  test_budget_set_after_requests();
  test_budget_round_robin();
  test_budget_request_waits();
  if (g_failures) {
    fprintf(stderr, "%d checks failed\n", g_failures);
    return 1;
  }
  printf("runtime_c_api_test: all checks passed\n");
  return 0;
}
