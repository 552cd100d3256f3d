// Embedder: checks the inputs, runs the model (a Forward per text for decoders), pools and
// normalizes.
#include "engine/embedding.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/bert.h"

namespace hpl {

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::kUnspecified:
      return "unspecified";
    case Pooling::kNone:
      return "none";
    case Pooling::kMean:
      return "mean";
    case Pooling::kCls:
      return "cls";
    case Pooling::kLast:
      return "last";
    case Pooling::kRank:
      return "rank";
  }
  return "?";
}

Pooling parse_pooling(const std::string& name) {
  for (Pooling p :
       {Pooling::kNone, Pooling::kMean, Pooling::kCls, Pooling::kLast, Pooling::kRank}) {
    if (name == pooling_name(p)) return p;
  }
  throw std::invalid_argument("unknown pooling '" + name + "' (none, mean, cls, last, rank)");
}

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::kGenerate:
      return "generate";
    case ModelKind::kEmbed:
      return "embed";
    case ModelKind::kRerank:
      return "rerank";
  }
  return "?";
}

namespace {

std::string model_name(const Model& m) {
  return m.file ? m.file->path() : "model";
}

bool is_encoder(const Model& m) {
  return m.config.encoder;
}

bool has_classifier(const Model& m) {
  return m.weights.cls_out.data != nullptr;
}

// A special token id from the GGUF (the first of keys present), else dflt; checked in range.
int32_t special_id(const Model& m, std::initializer_list<const char*> keys, int32_t dflt) {
  int64_t id = dflt;
  for (const char* key : keys) {
    if (m.file && m.file->has(key)) {
      id = m.file->i64(key);
      break;
    }
  }
  if (id < 0 || id >= m.config.n_vocab) {
    throw ModelError(model_name(m) + ": special token id " + std::to_string(id) + " (" +
                     *keys.begin() + ") is outside the vocabulary");
  }
  return static_cast<int32_t>(id);
}

Pooling default_pooling(const ModelConfig& c) {
  return c.encoder ? Pooling::kMean : Pooling::kLast;
}

}  // namespace

Pooling model_pooling(const GgufFile& f, const ModelConfig& c) {
  if (!f.has("{arch}.pooling_type")) return default_pooling(c);
  int64_t v = -1;
  try {
    v = f.i64("{arch}.pooling_type");
  } catch (const GgufError& e) {
    throw ModelError(e.what());
  }
  if (v < 0 || v > 4) {
    throw ModelError(f.path() + ": " + f.resolve("{arch}.pooling_type") + " = " +
                     std::to_string(v) + " is not a pooling type (0 none .. 4 rank)");
  }
  return static_cast<Pooling>(v);
}

Pooling model_pooling(const Model& m) {
  return m.file ? model_pooling(*m.file, m.config) : default_pooling(m.config);
}

ModelKind model_kind(const GgufFile& f, const ModelConfig& c) {
  if (c.encoder) return c.n_cls_out > 0 ? ModelKind::kRerank : ModelKind::kEmbed;
  if (f.has("{arch}.pooling_type") && model_pooling(f, c) != Pooling::kNone &&
      model_pooling(f, c) != Pooling::kRank) {
    return ModelKind::kEmbed;
  }
  return ModelKind::kGenerate;
}

ModelKind model_kind(const Model& m) {
  if (is_encoder(m)) return has_classifier(m) ? ModelKind::kRerank : ModelKind::kEmbed;
  return m.file ? model_kind(*m.file, m.config) : ModelKind::kGenerate;
}

size_t embedder_hidden_bytes(const ModelConfig& c, const ForwardOptions& opt) {
  if (c.encoder) return 0;
  return static_cast<size_t>(opt.n_ctx) * static_cast<size_t>(c.n_embd) * sizeof(float);
}

void pool_rows(const float* h, int64_t n, int64_t d, Pooling p, float* out) {
  if (n < 1) throw std::invalid_argument("pool_rows: no rows");
  switch (p) {
    case Pooling::kMean: {
      for (int64_t j = 0; j < d; ++j) out[j] = 0.0f;
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = 0; j < d; ++j) out[j] += h[t * d + j];
      }
      const float inv = 1.0f / static_cast<float>(n);
      for (int64_t j = 0; j < d; ++j) out[j] *= inv;
      return;
    }
    case Pooling::kCls:
      for (int64_t j = 0; j < d; ++j) out[j] = h[j];
      return;
    case Pooling::kLast:
      for (int64_t j = 0; j < d; ++j) out[j] = h[(n - 1) * d + j];
      return;
    default:
      throw std::invalid_argument(std::string("pool_rows: pooling ") + pooling_name(p) +
                                  " does not give one vector per text");
  }
}

void l2_normalize(float* x, int64_t n) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  if (ss <= 0.0) return;
  const float inv = static_cast<float>(1.0 / std::sqrt(ss));
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

std::vector<int32_t> embed_tokens(const Tokenizer& tok, const std::string& text) {
  return tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
}

// Inputs as the model will see them: checked, and cut to n_ctx when asked.
static std::vector<std::vector<int32_t>> checked_inputs(const std::vector<std::vector<int32_t>>& in,
                                                        int64_t n_ctx, bool truncate,
                                                        const char* what) {
  if (in.empty()) throw ModelError(std::string(what) + ": no inputs (the input list is empty)");
  std::vector<std::vector<int32_t>> out = in;
  for (size_t i = 0; i < out.size(); ++i) {
    auto& ids = out[i];
    if (ids.empty()) {
      throw ModelError(std::string(what) + ": input " + std::to_string(i) +
                       " is empty (no tokens)");
    }
    if (static_cast<int64_t>(ids.size()) > n_ctx) {
      if (!truncate) {
        throw ModelError(std::string(what) + ": input " + std::to_string(i) + " has " +
                         std::to_string(ids.size()) + " tokens, more than the context of " +
                         std::to_string(n_ctx) + " (ask for truncation to cut it)");
      }
      // Keep the first n_ctx - 1 tokens and the last (the closing special token).
      const int32_t last = ids.back();
      ids.resize(static_cast<size_t>(n_ctx));
      ids.back() = last;
    }
  }
  return out;
}

struct Embedder::Impl {
  const Model& model;
  Pooling default_pooling;
  std::unique_ptr<Forward> fwd;       // decoders
  std::unique_ptr<BertEncoder> bert;  // encoders
  std::vector<float> hidden;          // decoders: (n_ctx, n_embd)
  int64_t n_ctx = 0;

  Impl(const Model& m, const ForwardOptions& opt) : model(m), default_pooling(model_pooling(m)) {
    if (is_encoder(m)) {
      bert = std::make_unique<BertEncoder>(m, opt);
      n_ctx = bert->n_ctx();
      return;
    }
    fwd = std::make_unique<Forward>(m, opt);
    n_ctx = fwd->n_ctx();
    hidden.assign(embedder_hidden_bytes(m.config, opt) / sizeof(float), 0.0f);
  }

  // Encoders: the sequences in batches of up to max_tokens() tokens; f(i, rows) gets each
  // sequence's hidden rows (n_i, n_embd).
  template <class F>
  void run_encoder(const std::vector<std::vector<int32_t>>& ids,
                   const std::vector<std::vector<int32_t>>* types, F&& f) {
    const int64_t E = model.config.n_embd;
    std::vector<BertEncoder::Seq> batch;
    size_t first = 0;
    int64_t ntok = 0;
    auto flush = [&] {
      if (batch.empty()) return;
      const float* h = bert->encode(batch.data(), static_cast<int>(batch.size()));
      for (size_t j = 0; j < batch.size(); ++j) {
        f(first + j, h);
        h += batch[j].n * E;
      }
      first += batch.size();
      batch.clear();
      ntok = 0;
    };
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto n = static_cast<int64_t>(ids[i].size());
      if (ntok + n > bert->max_tokens()) flush();
      batch.push_back({ids[i].data(), types ? (*types)[i].data() : nullptr, n});
      ntok += n;
    }
    flush();
  }

  // Decoders: one text at a time through the Forward's cache.
  void run_decoder(const std::vector<int32_t>& ids, Pooling p, float* out) {
    const int64_t n = static_cast<int64_t>(ids.size());
    fwd->reset();
    fwd->eval_hidden(ids.data(), n, hidden.data());
    fwd->reset();
    pool_rows(hidden.data(), n, model.config.n_embd, p, out);
  }
};

Embedder::Embedder(const Model& model, const ForwardOptions& opt)
    : impl_(std::make_unique<Impl>(model, opt)) {}

Embedder::~Embedder() = default;

int64_t Embedder::n_embd() const {
  return impl_->model.config.n_embd;
}
int64_t Embedder::n_ctx() const {
  return impl_->n_ctx;
}
size_t Embedder::kv_bytes() const {
  return impl_->fwd ? impl_->fwd->kv_bytes() : 0;
}
size_t Embedder::scratch_bytes() const {
  if (impl_->bert) return impl_->bert->scratch_bytes();
  return impl_->fwd->scratch_bytes() + impl_->hidden.size() * sizeof(float);
}

std::vector<std::vector<float>> Embedder::embed(const std::vector<std::vector<int32_t>>& inputs,
                                                const EmbedParams& p) {
  const Pooling pool = p.pooling == Pooling::kUnspecified ? impl_->default_pooling : p.pooling;
  if (pool == Pooling::kNone || pool == Pooling::kRank) {
    throw ModelError(std::string("embed: pooling ") + pooling_name(pool) +
                     " gives no single vector per text (use mean, cls or last" +
                     (pool == Pooling::kRank ? "; rank is for rerank)" : ")"));
  }
  const auto ids = checked_inputs(inputs, impl_->n_ctx, p.truncate, "embed");
  const int64_t E = n_embd();
  std::vector<std::vector<float>> out(ids.size(), std::vector<float>(static_cast<size_t>(E)));
  if (impl_->bert) {
    impl_->run_encoder(ids, nullptr, [&](size_t i, const float* rows) {
      pool_rows(rows, static_cast<int64_t>(ids[i].size()), E, pool, out[i].data());
    });
  } else {
    for (size_t i = 0; i < ids.size(); ++i) impl_->run_decoder(ids[i], pool, out[i].data());
  }
  if (p.normalize) {
    for (auto& v : out) l2_normalize(v.data(), E);
  }
  return out;
}

std::vector<float> Embedder::rerank(const std::vector<int32_t>& query,
                                    const std::vector<std::vector<int32_t>>& documents,
                                    bool truncate) {
  const Model& m = impl_->model;
  if (!impl_->bert || !has_classifier(m)) {
    throw ModelError(model_name(m) + " is a " + arch_name(m.config.arch) + " model with no " +
                     "classification head (" + model_kind_name(model_kind(m)) +
                     "): it cannot rerank (use a reranker, e.g. a "
                     "BertForSequenceClassification GGUF)");
  }
  if (documents.empty()) throw ModelError("rerank: no documents (the document list is empty)");
  if (query.empty()) throw ModelError("rerank: the query is empty (no tokens)");
  const int32_t cls =
      special_id(m, {"tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id"}, 101);
  const int32_t sep =
      special_id(m, {"tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eos_token_id"}, 102);
  const int64_t n_ctx = impl_->n_ctx;
  const auto nq = static_cast<int64_t>(query.size());
  // [CLS] q [SEP] d [SEP], types 0 for [CLS] q [SEP] and 1 for d [SEP].
  std::vector<std::vector<int32_t>> ids(documents.size()), types(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    const auto& d = documents[i];
    if (d.empty()) {
      throw ModelError("rerank: document " + std::to_string(i) + " is empty (no tokens)");
    }
    auto nd = static_cast<int64_t>(d.size());
    if (nq + nd + 3 > n_ctx) {
      if (!truncate || nq + 4 > n_ctx) {
        throw ModelError("rerank: query and document " + std::to_string(i) + " make " +
                         std::to_string(nq + nd + 3) + " tokens, more than the context of " +
                         std::to_string(n_ctx) +
                         (truncate ? " even with the document cut to one token"
                                   : " (ask for truncation to cut the document)"));
      }
      nd = n_ctx - nq - 3;
    }
    auto& s = ids[i];
    s.reserve(static_cast<size_t>(nq + nd + 3));
    s.push_back(cls);
    s.insert(s.end(), query.begin(), query.end());
    s.push_back(sep);
    s.insert(s.end(), d.begin(), d.begin() + nd);
    s.push_back(sep);
    types[i].assign(s.size(), 1);
    std::fill(types[i].begin(), types[i].begin() + nq + 2, 0);
  }
  const int64_t E = n_embd(), C = m.config.n_cls_out;
  std::vector<float> cls_rows(documents.size() * static_cast<size_t>(E));
  impl_->run_encoder(ids, &types, [&](size_t i, const float* rows) {
    std::copy(rows, rows + E, cls_rows.begin() + static_cast<int64_t>(i) * E);
  });
  std::vector<float> logits(documents.size() * static_cast<size_t>(C));
  std::vector<float> scores(documents.size());
  // In chunks the encoder's scratch holds.
  const auto chunk = static_cast<size_t>(impl_->bert->max_tokens());
  for (size_t i0 = 0; i0 < documents.size(); i0 += chunk) {
    const size_t n = std::min(chunk, documents.size() - i0);
    impl_->bert->classify(cls_rows.data() + i0 * E, static_cast<int64_t>(n),
                          logits.data() + i0 * C);
  }
  for (size_t i = 0; i < documents.size(); ++i) scores[i] = logits[i * static_cast<size_t>(C)];
  return scores;
}

}  // namespace hpl
