package com.happyphone.hpl;

/** The JNI entry points (bindings/java/hpl_jni.cc). Failures throw HplException. */
final class Native {
  static {
    // libhpl_jni links libhpl; on Android both ship in the APK's lib/arm64-v8a/.
    try {
      System.loadLibrary("hpl");
    } catch (UnsatisfiedLinkError e) {
      // Found through libhpl_jni's RUNPATH instead (desktop builds).
    }
    System.loadLibrary("hpl_jni");
  }

  private Native() {}

  static native String version();
  static native long modelLoad(String path, int nThreads, int nCtx, int nUbatch, boolean prefault);
  static native void modelUnload(long model);
  static native boolean failed(long model);
  static native void reset(long model);
  static native long sessionCreate(long model);
  static native void sessionFree(long session);
  static native void sessionReset(long session);
  static native void sessionRestart(long session, int keepLast);
  static native void sessionSave(long session, String path);
  static native void sessionRestore(long session, String path);
  static native long[] sessionInfo(long session);
  static native long submit(long model, long session, String prompt, String[] roles,
      String[] contents, float temperature, int topK, float topP, float minP,
      float repeatPenalty, int repeatLastN, long seed, int maxTokens, String[] stops,
      EventSink sink);
  static native long submitEmbed(long model, String[] inputs, int pooling, boolean normalize,
      boolean truncate, EventSink sink);
  static native long submitRerank(long model, String query, String[] documents, boolean truncate,
      EventSink sink);
  static native int[] modelInfo(long model);
  static native void prefixSave(long model, String prompt, String[] roles, String[] contents,
      String path);
  static native long prefixLoad(long model, String path, boolean haveExpect, String prompt,
      String[] roles, String[] contents);
  static native boolean stop(long model, long id);
  static native boolean waitFor(long model, long id, long timeoutMs);
}
