package com.happyphone.hpl;

/** What a model does and its embedding sizes (the C API's hpl_model_info). */
public final class ModelInfo {
  /** A generation model (which also gives embeddings), an embedding model, a reranker. */
  public static final int GENERATE = 0, EMBED = 1, RERANK = 2;

  public final int kind;
  public final int nEmbd;     // the size of an embedding
  public final int nCtxEmbed; // the longest input of an embedding / rerank request, in tokens

  ModelInfo(int kind, int nEmbd, int nCtxEmbed) {
    this.kind = kind;
    this.nEmbd = nEmbd;
    this.nCtxEmbed = nCtxEmbed;
  }
}
