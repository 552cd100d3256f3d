package com.happyphone.hpl;

import java.io.File;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs generations from Java through JNI: streaming, stop, sessions with save/restore,
 * embeddings, rerank refusals and a saved prompt prefix.
 */
public final class HplTest {
  static int failures = 0;

  static void check(boolean ok, String what) {
    if (!ok) {
      System.err.println("FAILED: " + what);
      failures++;
    }
  }

  static final class Collect implements Callback {
    final StringBuilder text = new StringBuilder();
    final CountDownLatch done = new CountDownLatch(1);
    final AtomicInteger terminals = new AtomicInteger();
    volatile Stats stats;
    volatile int errorStatus = 0;
    volatile String error;
    volatile boolean queued, processing;
    volatile float[] outputs;
    volatile int nOutputs, dim;
    Model model;
    int stopAfter = 0;
    int tokens = 0;

    @Override public void onQueued(long id) { queued = true; }
    @Override public void onProcessing(long id) { processing = true; }

    @Override
    public void onToken(long id, String piece) {
      synchronized (this) { text.append(piece); }
      if (++tokens == stopAfter) model.stop(id);  // stop from inside a callback
    }

    @Override
    public void onOutputs(long id, float[] out, int n, int d) {
      outputs = out;
      nOutputs = n;
      dim = d;
    }

    @Override
    public void onDone(long id, Stats s) {
      stats = s;
      terminals.incrementAndGet();
      done.countDown();
    }

    @Override
    public void onError(long id, int status, String message) {
      errorStatus = status;
      error = message;
      terminals.incrementAndGet();
      done.countDown();
    }

    String text() { synchronized (this) { return text.toString(); } }

    void await() throws InterruptedException {
      check(done.await(120, TimeUnit.SECONDS), "request finished in time");
    }
  }

  static double norm(float[] v, int row, int dim) {
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += (double) v[row * dim + j] * v[row * dim + j];
    return Math.sqrt(ss);
  }

  static boolean rowsEqual(float[] v, int a, int b, int dim) {
    for (int j = 0; j < dim; ++j)
      if (v[a * dim + j] != v[b * dim + j]) return false;
    return true;
  }

  static Collect run(Model m, Request r) throws InterruptedException {
    Collect c = new Collect();
    m.submit(r, c);
    c.await();
    return c;
  }

  // Embeddings of a generation model (its pooled hidden states): one vector of nEmbd floats
  // per text, L2-normalized unless asked otherwise; the same text gives the same vector.
  static void testEmbed(Model m) throws InterruptedException {
    ModelInfo info = m.info();
    check(info.kind == ModelInfo.GENERATE && info.nEmbd > 0 && info.nCtxEmbed > 0, "model info");
    Collect e = new Collect();
    m.submitEmbed(new String[] {"Once upon a time", "The cat sat.", "Once upon a time"}, null, e);
    e.await();
    check(e.error == null && e.terminals.get() == 1, "embed done: " + e.error);
    final int d = info.nEmbd;
    check(e.nOutputs == 3 && e.dim == d && e.outputs.length == 3 * d,
        "embed outputs " + e.nOutputs + " x " + e.dim);
    for (int i = 0; i < 3; ++i) check(Math.abs(norm(e.outputs, i, d) - 1) < 1e-4, "normalized");
    check(rowsEqual(e.outputs, 0, 2, d) && !rowsEqual(e.outputs, 0, 1, d),
        "same text, same vector");
    // Last-token pooling (a decoder's default) without normalizing: the same direction.
    Collect raw = new Collect();
    m.submitEmbed(new String[] {"Once upon a time"},
        new EmbedParams().pooling(EmbedParams.POOLING_LAST).normalize(false), raw);
    raw.await();
    final double n = norm(raw.outputs, 0, d);
    check(Math.abs(n - 1) > 1e-3, "not normalized: norm " + n);
    double worst = 0;
    for (int j = 0; j < d; ++j)
      worst = Math.max(worst, Math.abs(raw.outputs[j] / n - e.outputs[j]));
    check(worst < 1e-5, "raw / norm equals the normalized vector (off by " + worst + ")");
    System.out.println("java embed: 3 x " + e.dim + " floats, raw norm " + n);
    // Refusals at submit, with the C status and message; no callback.
    try {
      m.submitEmbed(new String[0], null, new Collect());
      check(false, "empty input list accepted");
    } catch (HplException x) {
      check(x.status == HplException.INVALID_ARGUMENT && x.getMessage().contains("empty"),
          x.getMessage());
    }
    try {
      m.submitEmbed(new String[] {"a", ""}, null, new Collect());
      check(false, "empty text accepted");
    } catch (HplException x) {
      check(x.status == HplException.INVALID_ARGUMENT && x.getMessage().contains("inputs[1]"),
          x.getMessage());
    }
    try {
      m.submitRerank("cat", new String[] {"The cat sat."}, false, new Collect());
      check(false, "a generation model reranked");
    } catch (HplException x) {
      check(x.status == HplException.INVALID_ARGUMENT && x.getMessage().contains("cannot rerank"),
          x.getMessage());
    }
  }

  // A prompt prefix saved by one model instance and loaded into a fresh one: the first
  // stateless request reuses its KV (cachedTokens) and says the same as without it.
  static void testPrefix(String story, String other) throws Exception {
    String file = File.createTempFile("hpl_java", ".prefix").getPath();
    String preamble = "Once upon a time, there was a little girl named Lily. She";
    Request prompt = Request.prompt(preamble + " loved to").maxTokens(12).temperature(0);
    try (Model a = new Model(story, 1, 256, 16, false)) {
      a.prefixSave(Request.prompt(preamble), file);
    }
    Collect want;
    try (Model b = new Model(story, 1, 256, 16, false)) {
      want = run(b, prompt);
      check(want.stats.cachedTokens == 0, "nothing cached without the prefix");
    }
    try (Model m = new Model(story, 1, 256, 16, false)) {
      long n = m.prefixLoad(file, Request.prompt(preamble));
      check(n > 5 && n < want.stats.promptTokens, "prefix of " + n + " tokens");
      Collect got = run(m, prompt);
      check(got.text().equals(want.text()), "same text with the prefix: " + got.text());
      check(got.stats.cachedTokens == n, "cached " + got.stats.cachedTokens);
      System.out.println("java prefix: " + n + " tokens reused, same text: \"" + got.text() + "\"");
      check(got.stats.promptTokens + got.stats.cachedTokens == want.stats.promptTokens,
          "prompt tokens");
      try {
        m.prefixLoad(file, Request.prompt("The dog ran."));
        check(false, "another expected prefix accepted");
      } catch (HplException x) {
        check(x.status == HplException.SESSION_MISMATCH && x.getMessage().contains("save it again"),
            x.getMessage());
      }
    }
    try (Model o = new Model(other, 1, 256, 16, false)) {
      o.prefixLoad(file, null);
      check(false, "a prefix of another model accepted");
    } catch (HplException x) {
      check(x.status == HplException.SESSION_MISMATCH && x.getMessage().contains("another model"),
          x.getMessage());
    }
    new File(file).delete();
  }

  // A cross-encoder: its scores equal transformers' (tests/data/hf-tiny-bert/bert-rerank/
  // expected.json, F32 GGUF: within 1e-4), in document order, one request per query; an
  // embedding request to a reranker is refused.
  static void testRerank(String path) throws InterruptedException {
    if (!new File(path).exists()) {
      System.out.println("java rerank: skipped (no " + path + ")");
      return;
    }
    String[] queries = {"how to embed text", "how to embed text", "fast local search",
        "what is a token"};
    String[] docs = {"the model embeds text on the phone", "the cat jumped over the lazy dog",
        "search is fast when the index is local", "a token is a piece of text the model reads"};
    double[] want = {0.20189672708511353, 0.10503458976745605, -0.3582053780555725,
        -0.17485374212265015};
    try (Model r = new Model(path, 1, 64, 512, false)) {
      check(r.info().kind == ModelInfo.RERANK, "reranker kind " + r.info().kind);
      Collect both = new Collect();
      r.submitRerank(queries[0], new String[] {docs[0], docs[1]}, false, both);
      both.await();
      check(both.error == null && both.nOutputs == 2 && both.dim == 1,
          "rerank outputs " + both.error);
      for (int i = 0; i < 2; ++i)
        check(Math.abs(both.outputs[i] - want[i]) < 1e-4, "score " + i + ": " + both.outputs[i]);
      for (int i = 2; i < 4; ++i) {
        Collect one = new Collect();
        r.submitRerank(queries[i], new String[] {docs[i]}, false, one);
        one.await();
        check(one.nOutputs == 1 && Math.abs(one.outputs[0] - want[i]) < 1e-4,
            "score " + i + ": " + (one.outputs == null ? "none" : one.outputs[0]));
      }
      System.out.println("java rerank: " + both.outputs[0] + ", " + both.outputs[1]);
      try {
        r.submitEmbed(new String[] {"hello"}, null, new Collect());
        check(false, "a reranker embedded");
      } catch (HplException x) {
        check(x.status == HplException.INVALID_ARGUMENT && x.getMessage().contains("is a reranker"),
            x.getMessage());
      }
    }
  }

  public static void main(String[] args) throws Exception {
    String dir = args[0];
    String story = dir + "/stories260K.gguf";
    check(Model.version().equals("0.1.0"), "version");
    try (Model m = new Model(story, 1, 256, 16, false)) {
      // A greedy generation streams the llama.cpp reference continuation.
      Collect c = new Collect();
      long id = m.submit(Request.prompt("Once upon a time").maxTokens(20).temperature(0), c);
      c.await();
      check(c.queued && c.processing, "queued and processing events");
      check(c.terminals.get() == 1, "one terminal event");
      check(c.text().startsWith(", there was a little girl named Lily."), "text: " + c.text());
      check(c.stats.promptTokens == 5 && c.stats.completionTokens > 0, "stats " + c.stats);
      System.out.println("java generation: \"" + c.text() + "\" (" + c.stats + ")");
      check(!m.stop(id), "stop after the end");

      // Stop from the callback: partial output kept.
      Collect s = new Collect();
      s.model = m;
      s.stopAfter = 3;
      m.submit(Request.prompt("Once upon a time").maxTokens(200).temperature(0.9f).seed(5), s);
      s.await();
      check(s.stats.finish == Stats.STOPPED || s.stats.finish == Stats.END_OF_GENERATION,
          "stopped: " + s.stats);
      if (s.stats.finish == Stats.STOPPED)
        check(s.stats.truncated && s.stats.completionTokens == 3 && !s.text().isEmpty(),
            "partial output kept");

      // Sessions: save after turn 1; a restored session continues the same way.
      String file = File.createTempFile("hpl_java", ".session").getPath();
      String uninterrupted;
      try (Session a = m.newSession()) {
        Collect t1 = new Collect();
        a.submit(Request.prompt("Once upon a time").maxTokens(12).temperature(0), t1);
        t1.await();
        a.save(file);
        Collect t2 = new Collect();
        a.submit(Request.prompt(" One day,").maxTokens(16).temperature(0), t2);
        t2.await();
        uninterrupted = t2.text();
      }
      try (Session b = m.newSession()) {
        b.restore(file);
        check(b.info()[3] == 1, "one exchange restored");
        Collect t2 = new Collect();
        b.submit(Request.prompt(" One day,").maxTokens(16).temperature(0), t2);
        t2.await();
        check(t2.text().equals(uninterrupted), "same continuation after restore");
      }
      try (Model other = new Model(dir + "/TinyStories-656K.f16.gguf", 1, 256, 16, false);
           Session o = other.newSession()) {
        o.restore(file);
        check(false, "restore from another model was accepted");
      } catch (HplException e) {
        check(e.status == HplException.SESSION_MISMATCH, "mismatch status " + e.status);
      }
      new File(file).delete();

      testEmbed(m);

      // Errors are exceptions with the C status.
      try {
        m.submit(Request.prompt("x").maxTokens(0), new Collect());
        check(false, "max_tokens 0 accepted");
      } catch (HplException e) {
        check(e.status == HplException.INVALID_ARGUMENT, "invalid argument");
      }
    }
    testPrefix(story, dir + "/TinyStories-656K.f16.gguf");
    if (args.length > 1) testRerank(args[1]);
    try {
      new Model(dir + "/missing.gguf");
      check(false, "missing model loaded");
    } catch (HplException e) {
      check(e.status == HplException.IO && e.getMessage().contains("missing.gguf"), e.getMessage());
    }
    if (failures > 0) {
      System.err.println(failures + " checks failed");
      System.exit(1);
    }
    System.out.println("runtime_java_test: all checks passed");
  }
}
