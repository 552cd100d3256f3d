package com.happyphone.hpl;

/** A conversation: its KV cache is kept between turns. The methods block (not in callbacks). */
public final class Session implements AutoCloseable {
  final Model model;
  long handle;

  Session(Model model) {
    this.model = model;
    this.handle = Native.sessionCreate(model.handle());
  }

  long handle() {
    if (handle == 0) throw new HplException(HplException.INVALID_ARGUMENT, "session is closed");
    return handle;
  }

  public long submit(Request r, Callback cb) { return model.submit(this, r, cb); }
  public void reset() { Native.sessionReset(handle()); }
  /** Start over carrying the last keepLast exchanges (after a CONTEXT_FULL error). */
  public void restart(int keepLast) { Native.sessionRestart(handle(), keepLast); }
  public void save(String path) { Native.sessionSave(handle(), path); }
  public void restore(String path) { Native.sessionRestore(handle(), path); }
  /** {n_ctx, n_past, n_tokens, n_exchanges} */
  public long[] info() { return Native.sessionInfo(handle()); }

  @Override
  public void close() {
    if (handle != 0) {
      Native.sessionFree(handle);
      handle = 0;
    }
  }
}
