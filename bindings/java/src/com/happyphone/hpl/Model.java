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
