package com.happyphone.hpl;

/** How an embedding request pools and normalizes (the C API's hpl_embed_params). */
public final class EmbedParams {
  /** The GGUF's pooling_type, else mean (bert) or last (decoders). */
  public static final int POOLING_MODEL = -1;
  public static final int POOLING_MEAN = 1, POOLING_CLS = 2, POOLING_LAST = 3;

  int pooling = POOLING_MODEL;
  boolean normalize = true;
  boolean truncate = false;

  public EmbedParams pooling(int p) { pooling = p; return this; }
  /** true (default): each vector has L2 norm 1; false: as pooled. */
  public EmbedParams normalize(boolean n) { normalize = n; return this; }
  /** false (default): an input longer than the model's nCtxEmbed is refused; true: cut. */
  public EmbedParams truncate(boolean t) { truncate = t; return this; }
}
