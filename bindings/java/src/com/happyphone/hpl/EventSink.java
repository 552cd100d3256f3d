package com.happyphone.hpl;

import java.nio.charset.StandardCharsets;

/** Receives raw events from the JNI glue and hands them to the user's Callback. */
final class EventSink {
  private final Callback cb;

  EventSink(Callback cb) { this.cb = cb; }

  // Called from native code. Text arrives as UTF-8 bytes (JNI's NewStringUTF would mangle
  // characters outside the BMP).
  void onEvent(int type, long id, byte[] text, int status, int promptTokens,
      int completionTokens, double ttft, double prefill, double decode, double queueMs,
      double totalMs, boolean truncated, int finish, int cachedTokens, float[] outputs,
      int nOutputs, int dim) {
    switch (type) {
      case 0: cb.onQueued(id); break;
      case 1: cb.onProcessing(id); break;
      case 2: cb.onToken(id, new String(text, StandardCharsets.UTF_8)); break;
      case 3:
        if (outputs != null) cb.onOutputs(id, outputs, nOutputs, dim);
        cb.onDone(id, new Stats(promptTokens, completionTokens, ttft, prefill, decode, queueMs,
            totalMs, truncated, finish, cachedTokens));
        break;
      default: cb.onError(id, status, new String(text, StandardCharsets.UTF_8)); break;
    }
  }
}
