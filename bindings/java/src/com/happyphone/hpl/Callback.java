package com.happyphone.hpl;

/**
 * Events of one request. onQueued runs on the thread calling {@link Model#submit}, before it
 * returns; onDone of a request stopped while queued runs on the thread calling
 * {@link Model#stop}; everything else runs on the model's worker thread (a native thread
 * attached to the VM). Exactly one of onDone / onError ends every request. Keep callbacks
 * short (post to your UI thread); you may call submit() and stop() from them, but not the
 * blocking calls (waitFor, the Session methods, close), which throw WOULD_DEADLOCK there.
 */
public interface Callback {
  default void onQueued(long id) {}

  default void onProcessing(long id) {}

  /** A UTF-8-complete piece of generated text. */
  void onToken(long id, String text);

  /**
   * The DONE of an embedding or rerank request, just before onDone: nOutputs rows of dim
   * floats (outputs[i * dim + j] is input i's; rerank: one score per document, dim 1), fewer
   * than the inputs only when stopped. Generation requests never get it.
   */
  default void onOutputs(long id, float[] outputs, int nOutputs, int dim) {}

  void onDone(long id, Stats stats);

  void onError(long id, int status, String message);
}
