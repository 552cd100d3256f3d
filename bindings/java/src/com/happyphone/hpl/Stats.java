package com.happyphone.hpl;

/** Statistics of a finished request (the DONE event). */
public final class Stats {
  public static final int END_OF_GENERATION = 0, MAX_TOKENS = 1, STOP_STRING = 2, STOPPED = 3,
      CONTEXT_END = 4;

  public final int promptTokens, completionTokens;
  public final double timeToFirstTokenMs, prefillTokensPerSecond, decodeTokensPerSecond;
  public final double queueMs, totalMs;
  public final boolean truncated;
  public final int finish; // one of the constants above
  /** Stateless requests: prompt tokens whose KV was reused (a loaded prefix, the prompt
   * cache), not in promptTokens; 0 in a session. */
  public final int cachedTokens;

  Stats(int promptTokens, int completionTokens, double ttft, double prefill, double decode,
      double queueMs, double totalMs, boolean truncated, int finish, int cachedTokens) {
    this.promptTokens = promptTokens;
    this.completionTokens = completionTokens;
    this.timeToFirstTokenMs = ttft;
    this.prefillTokensPerSecond = prefill;
    this.decodeTokensPerSecond = decode;
    this.queueMs = queueMs;
    this.totalMs = totalMs;
    this.truncated = truncated;
    this.finish = finish;
    this.cachedTokens = cachedTokens;
  }

  @Override
  public String toString() {
    return String.format("prompt %d, completion %d, ttft %.2f ms, prefill %.1f tok/s, decode %.1f tok/s, finish %d%s",
        promptTokens, completionTokens, timeToFirstTokenMs, prefillTokensPerSecond,
        decodeTokensPerSecond, finish, truncated ? " (truncated)" : "");
  }
}
