package com.happyphone.hpl;

/**
 * A loaded GGUF model with its worker thread: requests run one at a time in submission order;
 * submit() returns at once and the text arrives through the {@link Callback}.
 */
public final class Model implements AutoCloseable {
  private long handle;

  public Model(String path, int nThreads, int nCtx, int nUbatch, boolean prefault) {
    handle = Native.modelLoad(path, nThreads, nCtx, nUbatch, prefault);
  }

  public Model(String path) { this(path, 4, 2048, 256, false); }

  long handle() {
    if (handle == 0) throw new HplException(HplException.INVALID_ARGUMENT, "model is closed");
    return handle;
  }

  public static String version() { return Native.version(); }

  public Session newSession() { return new Session(this); }

  /** A stateless request. Returns its id. */
  public long submit(Request r, Callback cb) { return submit(null, r, cb); }

  long submit(Session s, Request r, Callback cb) {
    if (cb == null) throw new NullPointerException("callback");
    return Native.submit(handle(), s == null ? 0 : s.handle(), r.prompt,
        r.roles.toArray(new String[0]), r.contents.toArray(new String[0]), r.temperature, r.topK,
        r.topP, r.minP, r.repeatPenalty, r.repeatLastN, r.seed, r.maxTokens,
        r.stops.toArray(new String[0]), new EventSink(cb));
  }

  /**
   * An embedding request: one vector per input text, delivered to {@link Callback#onOutputs}
   * before onDone. params may be null (the defaults). Refused (HplException INVALID_ARGUMENT)
   * for no inputs, an empty text, an input longer than {@link ModelInfo#nCtxEmbed} without
   * truncate, or a reranker.
   */
  public long submitEmbed(String[] inputs, EmbedParams params, Callback cb) {
    if (cb == null) throw new NullPointerException("callback");
    EmbedParams p = params == null ? new EmbedParams() : params;
    return Native.submitEmbed(handle(), inputs, p.pooling, p.normalize, p.truncate,
        new EventSink(cb));
  }

  /**
   * A rerank request: one relevance score per document for the query (a cross-encoder's),
   * in document order, delivered to {@link Callback#onOutputs}. truncate cuts documents that
   * do not fit beside the query, else they are refused. A model with no classification head
   * is refused.
   */
  public long submitRerank(String query, String[] documents, boolean truncate, Callback cb) {
    if (cb == null) throw new NullPointerException("callback");
    return Native.submitRerank(handle(), query, documents, truncate, new EventSink(cb));
  }

  /** What the model does (generate, embed or rerank) and its embedding sizes. */
  public ModelInfo info() {
    int[] v = Native.modelInfo(handle());
    return new ModelInfo(v[0], v[1], v[2]);
  }

  /**
   * Saves a fixed prompt prefix (the prefix request's prompt or messages; nothing is
   * generated) with its KV cache to path, so a later run's first stateless request skips it.
   * Blocks (not in a callback).
   */
  public void prefixSave(Request prefix, String path) {
    Native.prefixSave(handle(), prefix.prompt, prefix.roles.toArray(new String[0]),
        prefix.contents.toArray(new String[0]), path);
  }

  /**
   * Loads a prefix saved by prefixSave into the stateless context; returns its length in
   * tokens. With expect non-null its tokens must be the start of expect's prompt
   * (HplException SESSION_MISMATCH otherwise); a file from another model is refused the same
   * way. Blocks (not in a callback).
   */
  public long prefixLoad(String path, Request expect) {
    Request e = expect == null ? new Request() : expect;
    return Native.prefixLoad(handle(), path, expect != null, e.prompt,
        e.roles.toArray(new String[0]), e.contents.toArray(new String[0]));
  }

  /** Stops a queued or running request; false if unknown or already finished. */
  public boolean stop(long id) { return Native.stop(handle(), id); }

  /** Blocks until the request has ended; timeoutMs < 0: forever. False on timeout. */
  public boolean waitFor(long id, long timeoutMs) { return Native.waitFor(handle(), id, timeoutMs); }

  /** Circuit breaker: true after 3 failed requests in a row, until reset(). */
  public boolean failed() { return Native.failed(handle()); }
  public void reset() { Native.reset(handle()); }

  @Override
  public void close() {
    if (handle != 0) {
      Native.modelUnload(handle);
      handle = 0;
    }
  }
}
