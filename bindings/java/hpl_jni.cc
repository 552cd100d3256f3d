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
    const hpl_stats& s = ev->stats;
    env->CallVoidMethod(ref->sink, ref->on_event, static_cast<jint>(ev->type),
                        static_cast<jlong>(ev->id), text, static_cast<jint>(ev->status),
                        static_cast<jint>(s.prompt_tokens), static_cast<jint>(s.completion_tokens),
                        s.time_to_first_token_ms, s.prefill_tokens_per_s, s.decode_tokens_per_s,
                        s.queue_ms, s.total_ms, static_cast<jboolean>(s.truncated != 0),
                        static_cast<jint>(s.finish));
    if (env->ExceptionCheck()) {
      // A callback must not throw; report it and go on (the request is unaffected).
      env->ExceptionDescribe();
      env->ExceptionClear();
    }
    if (text) env->DeleteLocalRef(text);
    if (terminal) env->DeleteGlobalRef(ref->sink);
  }
  if (terminal) delete ref;
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
  bool no_prompt = false;
  const std::string p = utf8(env, prompt, &no_prompt);
  const std::vector<std::string> r = utf8_array(env, roles), c = utf8_array(env, contents);
  const std::vector<std::string> st = utf8_array(env, stops);
  if (r.size() != c.size()) {
    env->ThrowNew(env->FindClass("java/lang/IllegalArgumentException"),
                  "roles and contents differ in length");
    return 0;
  }
  std::vector<hpl_chat_message> msgs;
  for (size_t i = 0; i < r.size(); ++i) msgs.push_back({r[i].c_str(), c[i].c_str()});
  std::vector<const char*> stop_ptrs;
  for (const std::string& x : st) stop_ptrs.push_back(x.c_str());
  hpl_request_params rp;
  hpl_request_params_init(&rp);
  rp.prompt = no_prompt ? nullptr : p.c_str();
  rp.messages = msgs.empty() ? nullptr : msgs.data();
  rp.n_messages = msgs.size();
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

  jclass cls = env->GetObjectClass(sink);
  jmethodID on = env->GetMethodID(cls, "onEvent", "(IJ[BIIIDDDDDZI)V");
  env->DeleteLocalRef(cls);
  if (!on) return 0;  // NoSuchMethodError pending
  auto* ref = new SinkRef{env->NewGlobalRef(sink), on};
  hpl_request_id id = 0;
  const hpl_status status = hpl_submit(M(m), S(s), &rp, on_event, ref, &id);
  if (status != HPL_OK) {  // no event will come: release here
    env->DeleteGlobalRef(ref->sink);
    delete ref;
    throw_hpl(env, status);
    return 0;
  }
  return static_cast<jlong>(id);
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
