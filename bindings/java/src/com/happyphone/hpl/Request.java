package com.happyphone.hpl;

import java.util.ArrayList;
import java.util.List;

/** What to generate: a raw prompt or chat messages, sampling settings, limits. */
public final class Request {
  String prompt;
  final List<String> roles = new ArrayList<>(), contents = new ArrayList<>();
  final List<String> stops = new ArrayList<>();
  float temperature = 0.8f, topP = 0.95f, minP = 0.05f, repeatPenalty = 1.0f;
  int topK = 40, repeatLastN = 64, maxTokens = 128;
  long seed = 0;

  public static Request prompt(String text) {
    Request r = new Request();
    r.prompt = text;
    return r;
  }

  /** A chat request; add messages with {@link #message}. In a session, pass only new ones. */
  public static Request chat() {
    return new Request();
  }

  public Request message(String role, String content) {
    roles.add(role);
    contents.add(content);
    return this;
  }

  public Request maxTokens(int n) { maxTokens = n; return this; }
  public Request temperature(float t) { temperature = t; return this; }
  public Request topK(int k) { topK = k; return this; }
  public Request topP(float p) { topP = p; return this; }
  public Request minP(float p) { minP = p; return this; }
  public Request repeatPenalty(float p, int lastN) { repeatPenalty = p; repeatLastN = lastN; return this; }
  public Request seed(long s) { seed = s; return this; }
  public Request stop(String s) { stops.add(s); return this; }
}
