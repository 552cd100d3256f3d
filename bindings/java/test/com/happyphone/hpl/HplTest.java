package com.happyphone.hpl;

import java.io.File;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** Runs generations from Java through JNI: streaming, stop, sessions with save/restore. */
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

      // Errors are exceptions with the C status.
      try {
        m.submit(Request.prompt("x").maxTokens(0), new Collect());
        check(false, "max_tokens 0 accepted");
      } catch (HplException e) {
        check(e.status == HplException.INVALID_ARGUMENT, "invalid argument");
      }
    }
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
