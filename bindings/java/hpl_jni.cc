// JNI glue: com.happyphone.hpl.Native over the C API. Events come back through an EventSink
// object held as a global reference until the request's terminal event. The worker thread
// is attached to the VM (as a daemon) on its first event and detached when it exits.
#include <jni.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hpl.h"

namespace {

JavaVM* g_vm = nullptr;

// Detaches a thread we attached, when that thread exits (the model's worker).
struct Attachment {
  bool attached = false;
  ~Attachment() {
    if (attached && g_vm) g_vm->DetachCurrentThread();
  }
};
thread_local Attachment t_attachment;

JNIEnv* env_for_this_thread() {
  JNIEnv* env = nullptr;
  if (g_vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) == JNI_OK) return env;
#ifdef __ANDROID__
  if (g_vm->AttachCurrentThreadAsDaemon(&env, nullptr) != JNI_OK) return nullptr;
#else
  if (g_vm->AttachCurrentThreadAsDaemon(reinterpret_cast<void**>(&env), nullptr) != JNI_OK)
    return nullptr;
#endif
  t_attachment.attached = true;
  return env;
}

void throw_hpl(JNIEnv* env, hpl_status status) {
  jclass cls = env->FindClass("com/happyphone/hpl/HplException");
  if (!cls) return;  // NoClassDefFoundError is pending
  jmethodID ctor = env->GetMethodID(cls, "<init>", "(ILjava/lang/String;)V");
  jstring msg = env->NewStringUTF(hpl_last_error());
  auto ex = static_cast<jthrowable>(env->NewObject(cls, ctor, static_cast<jint>(status), msg));
  if (ex) env->Throw(ex);
}

// Returns true when ok; otherwise a Java exception is pending.
bool check(JNIEnv* env, hpl_status s) {
  if (s == HPL_OK) return true;
  throw_hpl(env, s);
  return false;
}

// Java String -> UTF-8 (real UTF-8, not JNI's modified UTF-8). Null -> "" and *is_null.
std::string utf8(JNIEnv* env, jstring s, bool* is_null = nullptr) {
  if (is_null) *is_null = s == nullptr;
  if (!s) return {};
  jclass cls = env->GetObjectClass(s);
  jmethodID get_bytes = env->GetMethodID(cls, "getBytes", "(Ljava/lang/String;)[B");
  jstring cs = env->NewStringUTF("UTF-8");
  auto bytes = static_cast<jbyteArray>(env->CallObjectMethod(s, get_bytes, cs));
  if (!bytes) return {};
  const jsize n = env->GetArrayLength(bytes);
  std::string out(static_cast<size_t>(n), '\0');
  env->GetByteArrayRegion(bytes, 0, n, reinterpret_cast<jbyte*>(out.data()));
  env->DeleteLocalRef(bytes);
  env->DeleteLocalRef(cs);
  env->DeleteLocalRef(cls);
  return out;
}

std::vector<std::string> utf8_array(JNIEnv* env, jobjectArray a) {
  std::vector<std::string> out;
  if (!a) return out;
  const jsize n = env->GetArrayLength(a);
  for (jsize i = 0; i < n; ++i) {
    auto s = static_cast<jstring>(env->GetObjectArrayElement(a, i));
    out.push_back(utf8(env, s));
    env->DeleteLocalRef(s);
  }
  return out;
}

struct SinkRef {
  jobject sink;  // global reference to the EventSink
  jmethodID on_event;
};

void on_event(const hpl_event* ev, void* user) {
  auto* ref = static_cast<SinkRef*>(user);
  JNIEnv* env = env_for_this_thread();
  const bool terminal = ev->type == HPL_EVENT_DONE || ev->type == HPL_EVENT_ERROR;
  if (env) {
    jbyteArray text = env->NewByteArray(static_cast<jsize>(ev->text_len));
    if (text)
      env->SetByteArrayRegion(text, 0, static_cast<jsize>(ev->text_len),
                              reinterpret_cast<const jbyte*>(ev->text));
    // DONE of an embed / rerank request: n_outputs rows of dim floats.
    jfloatArray outputs = nullptr;
    if (ev->outputs && ev->n_outputs > 0) {
      const auto n = static_cast<jsize>(ev->n_outputs) * static_cast<jsize>(ev->dim);
      outputs = env->NewFloatArray(n);
      if (outputs) env->SetFloatArrayRegion(outputs, 0, n, ev->outputs);
    }
    const hpl_stats& s = ev->stats;
    env->CallVoidMethod(ref->sink, ref->on_event, static_cast<jint>(ev->type),
                        static_cast<jlong>(ev->id), text, static_cast<jint>(ev->status),
                        static_cast<jint>(s.prompt_tokens), static_cast<jint>(s.completion_tokens),
                        s.time_to_first_token_ms, s.prefill_tokens_per_s, s.decode_tokens_per_s,
                        s.queue_ms, s.total_ms, static_cast<jboolean>(s.truncated != 0),
                        static_cast<jint>(s.finish), static_cast<jint>(s.cached_tokens), outputs,
                        static_cast<jint>(ev->n_outputs), static_cast<jint>(ev->dim));
    if (env->ExceptionCheck()) {
      // A callback must not throw; report it and go on (the request is unaffected).
      env->ExceptionDescribe();
      env->ExceptionClear();
    }
    if (text) env->DeleteLocalRef(text);
    if (outputs) env->DeleteLocalRef(outputs);
    if (terminal) env->DeleteGlobalRef(ref->sink);
  }
  if (terminal) delete ref;
}

// A Request's prompt or chat messages as hpl_request_params (sampling left at the defaults),
// owning the strings the params point to. ok is false when an exception is pending.
struct RequestText {
  std::string prompt;
  bool no_prompt = false;
  std::vector<std::string> roles, contents;
  std::vector<hpl_chat_message> msgs;
  hpl_request_params rp;
  bool ok = true;

  RequestText(JNIEnv* env, jstring p, jobjectArray r, jobjectArray c)
      : prompt(utf8(env, p, &no_prompt)), roles(utf8_array(env, r)), contents(utf8_array(env, c)) {
    hpl_request_params_init(&rp);
    if (roles.size() != contents.size()) {
      env->ThrowNew(env->FindClass("java/lang/IllegalArgumentException"),
                    "roles and contents differ in length");
      ok = false;
      return;
    }
    for (size_t i = 0; i < roles.size(); ++i)
      msgs.push_back({roles[i].c_str(), contents[i].c_str()});
    rp.prompt = no_prompt ? nullptr : prompt.c_str();
    rp.messages = msgs.empty() ? nullptr : msgs.data();
    rp.n_messages = msgs.size();
  }
};

// A global reference to sink and its onEvent, for the C callback; null with an exception
// pending when sink has no such method.
SinkRef* sink_ref(JNIEnv* env, jobject sink) {
  jclass cls = env->GetObjectClass(sink);
  jmethodID on = env->GetMethodID(cls, "onEvent", "(IJ[BIIIDDDDDZII[FII)V");
  env->DeleteLocalRef(cls);
  if (!on) return nullptr;  // NoSuchMethodError pending
  return new SinkRef{env->NewGlobalRef(sink), on};
}

// The request id when submitted; otherwise no event will come: releases ref and throws.
jlong submitted(JNIEnv* env, SinkRef* ref, hpl_status status, hpl_request_id id) {
  if (status != HPL_OK) {
    env->DeleteGlobalRef(ref->sink);
    delete ref;
    throw_hpl(env, status);
    return 0;
  }
  return static_cast<jlong>(id);
}

hpl_model* M(jlong h) {
  return reinterpret_cast<hpl_model*>(static_cast<intptr_t>(h));
}
hpl_session* S(jlong h) {
  return reinterpret_cast<hpl_session*>(static_cast<intptr_t>(h));
}

}  // namespace

extern "C" {

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM* vm, void*) {
  g_vm = vm;
  return JNI_VERSION_1_6;
}

#define NATIVE(ret, name) JNIEXPORT ret JNICALL Java_com_happyphone_hpl_Native_##name

NATIVE(jstring, version)(JNIEnv* env, jclass) {
  const char* v = nullptr;
  hpl_version(nullptr, nullptr, nullptr, &v);
  return env->NewStringUTF(v);
}

NATIVE(jlong, modelLoad)
(JNIEnv* env, jclass, jstring path, jint n_threads, jint n_ctx, jint n_ubatch, jboolean prefault) {
  bool null_path = false;
  const std::string p = utf8(env, path, &null_path);
  hpl_model_params mp;
  hpl_model_params_init(&mp);
  mp.n_threads = n_threads;
  mp.n_ctx = n_ctx;
  mp.n_ubatch = n_ubatch;
  mp.prefault = prefault ? 1 : 0;
  hpl_model* m = nullptr;
  if (!check(env, hpl_model_load(null_path ? nullptr : p.c_str(), &mp, &m))) return 0;
  return static_cast<jlong>(reinterpret_cast<intptr_t>(m));
}

NATIVE(void, modelUnload)(JNIEnv* env, jclass, jlong m) {
  check(env, hpl_model_unload(M(m)));
}

NATIVE(jboolean, failed)(JNIEnv* env, jclass, jlong m) {
  int32_t f = 0;
  check(env, hpl_model_failed(M(m), &f));
  return f ? JNI_TRUE : JNI_FALSE;
}

NATIVE(void, reset)(JNIEnv* env, jclass, jlong m) {
  check(env, hpl_model_reset(M(m)));
}

NATIVE(jlong, sessionCreate)(JNIEnv* env, jclass, jlong m) {
  hpl_session* s = nullptr;
  if (!check(env, hpl_session_create(M(m), &s))) return 0;
  return static_cast<jlong>(reinterpret_cast<intptr_t>(s));
}

NATIVE(void, sessionFree)(JNIEnv* env, jclass, jlong s) {
  check(env, hpl_session_free(S(s)));
}
NATIVE(void, sessionReset)(JNIEnv* env, jclass, jlong s) {
  check(env, hpl_session_reset(S(s)));
}
NATIVE(void, sessionRestart)(JNIEnv* env, jclass, jlong s, jint keep) {
  check(env, hpl_session_restart(S(s), keep));
}
NATIVE(void, sessionSave)(JNIEnv* env, jclass, jlong s, jstring path) {
  check(env, hpl_session_save(S(s), utf8(env, path).c_str()));
}
NATIVE(void, sessionRestore)(JNIEnv* env, jclass, jlong s, jstring path) {
  check(env, hpl_session_restore(S(s), utf8(env, path).c_str()));
}

NATIVE(jlongArray, sessionInfo)(JNIEnv* env, jclass, jlong s) {
  hpl_session_info i;
  if (!check(env, hpl_session_info_get(S(s), &i))) return nullptr;
  const jlong v[4] = {i.n_ctx, i.n_past, i.n_tokens, i.n_exchanges};
  jlongArray out = env->NewLongArray(4);
  if (out) env->SetLongArrayRegion(out, 0, 4, v);
  return out;
}

NATIVE(jlong, submit)
(JNIEnv* env, jclass, jlong m, jlong s, jstring prompt, jobjectArray roles, jobjectArray contents,
 jfloat temperature, jint top_k, jfloat top_p, jfloat min_p, jfloat repeat_penalty,
 jint repeat_last_n, jlong seed, jint max_tokens, jobjectArray stops, jobject sink) {
  RequestText t(env, prompt, roles, contents);
  if (!t.ok) return 0;
  const std::vector<std::string> st = utf8_array(env, stops);
  std::vector<const char*> stop_ptrs;
  for (const std::string& x : st) stop_ptrs.push_back(x.c_str());
  hpl_request_params& rp = t.rp;
  rp.sampler.temperature = temperature;
  rp.sampler.top_k = top_k;
  rp.sampler.top_p = top_p;
  rp.sampler.min_p = min_p;
  rp.sampler.repeat_penalty = repeat_penalty;
  rp.sampler.repeat_last_n = repeat_last_n;
  rp.sampler.seed = static_cast<uint64_t>(seed);
  rp.max_tokens = max_tokens;
  rp.stop_strings = stop_ptrs.empty() ? nullptr : stop_ptrs.data();
  rp.n_stop_strings = stop_ptrs.size();

  SinkRef* ref = sink_ref(env, sink);
  if (!ref) return 0;
  hpl_request_id id = 0;
  return submitted(env, ref, hpl_submit(M(m), S(s), &rp, on_event, ref, &id), id);
}

NATIVE(jlong, submitEmbed)
(JNIEnv* env, jclass, jlong m, jobjectArray inputs, jint pooling, jboolean normalize,
 jboolean truncate, jobject sink) {
  const std::vector<std::string> in = utf8_array(env, inputs);
  std::vector<const char*> ptrs;
  for (const std::string& x : in) ptrs.push_back(x.c_str());
  hpl_embed_params ep;
  hpl_embed_params_init(&ep);
  ep.pooling = static_cast<hpl_pooling>(pooling);
  ep.normalize = normalize ? 1 : 0;
  ep.truncate = truncate ? 1 : 0;
  SinkRef* ref = sink_ref(env, sink);
  if (!ref) return 0;
  hpl_request_id id = 0;
  return submitted(env, ref,
                   hpl_submit_embed(M(m), ptrs.data(), ptrs.size(), &ep, on_event, ref, &id), id);
}

NATIVE(jlong, submitRerank)
(JNIEnv* env, jclass, jlong m, jstring query, jobjectArray documents, jboolean truncate,
 jobject sink) {
  const std::string q = utf8(env, query);
  const std::vector<std::string> docs = utf8_array(env, documents);
  std::vector<const char*> ptrs;
  for (const std::string& x : docs) ptrs.push_back(x.c_str());
  SinkRef* ref = sink_ref(env, sink);
  if (!ref) return 0;
  hpl_request_id id = 0;
  return submitted(env, ref,
                   hpl_submit_rerank(M(m), q.c_str(), ptrs.data(), ptrs.size(), truncate ? 1 : 0,
                                     on_event, ref, &id),
                   id);
}

NATIVE(jintArray, modelInfo)(JNIEnv* env, jclass, jlong m) {
  hpl_model_info i;
  if (!check(env, hpl_model_info_get(M(m), &i))) return nullptr;
  const jint v[3] = {static_cast<jint>(i.kind), i.n_embd, i.n_ctx_embed};
  jintArray out = env->NewIntArray(3);
  if (out) env->SetIntArrayRegion(out, 0, 3, v);
  return out;
}

NATIVE(void, prefixSave)
(JNIEnv* env, jclass, jlong m, jstring prompt, jobjectArray roles, jobjectArray contents,
 jstring path) {
  RequestText t(env, prompt, roles, contents);
  if (!t.ok) return;
  check(env, hpl_prefix_save(M(m), &t.rp, utf8(env, path).c_str()));
}

NATIVE(jlong, prefixLoad)
(JNIEnv* env, jclass, jlong m, jstring path, jboolean have_expect, jstring prompt,
 jobjectArray roles, jobjectArray contents) {
  RequestText t(env, prompt, roles, contents);
  if (!t.ok) return 0;
  int64_t n = 0;
  if (!check(env,
             hpl_prefix_load(M(m), utf8(env, path).c_str(), have_expect ? &t.rp : nullptr, &n)))
    return 0;
  return static_cast<jlong>(n);
}

NATIVE(jboolean, stop)(JNIEnv* env, jclass, jlong m, jlong id) {
  const hpl_status s = hpl_stop(M(m), static_cast<hpl_request_id>(id));
  if (s == HPL_ERR_NOT_FOUND) return JNI_FALSE;
  return check(env, s) ? JNI_TRUE : JNI_FALSE;
}

NATIVE(jboolean, waitFor)(JNIEnv* env, jclass, jlong m, jlong id, jlong timeout_ms) {
  const hpl_status s = hpl_wait(M(m), static_cast<hpl_request_id>(id), timeout_ms);
  if (s == HPL_ERR_TIMEOUT) return JNI_FALSE;
  return check(env, s) ? JNI_TRUE : JNI_FALSE;
}

}  // extern "C"
