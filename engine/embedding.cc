// Embedder: checks the inputs, runs the model (a Forward per text for decoders), pools and
// normalizes.
#include "engine/embedding.h"

#include <cmath>
#include <stdexcept>
#include <string>

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

bool is_encoder(const Model& m) {
  return false;
}

bool has_classifier(const Model& m) {
  return false;
}

std::string model_name(const Model& m) {
  return m.file ? m.file->path() : "model";
}

}  // namespace

Pooling model_pooling(const Model& m) {
  const bool enc = is_encoder(m);
  if (!m.file || !m.file->has("{arch}.pooling_type")) return enc ? Pooling::kMean : Pooling::kLast;
  int64_t v = -1;
  try {
    v = m.file->i64("{arch}.pooling_type");
  } catch (const GgufError& e) {
    throw ModelError(e.what());
  }
  if (v < 0 || v > 4) {
    throw ModelError(model_name(m) + ": " + m.file->resolve("{arch}.pooling_type") + " = " +
                     std::to_string(v) + " is not a pooling type (0 none .. 4 rank)");
  }
  return static_cast<Pooling>(v);
}

ModelKind model_kind(const Model& m) {
  if (is_encoder(m)) return has_classifier(m) ? ModelKind::kRerank : ModelKind::kEmbed;
  if (m.file && m.file->has("{arch}.pooling_type") && model_pooling(m) != Pooling::kNone &&
      model_pooling(m) != Pooling::kRank) {
    return ModelKind::kEmbed;
  }
  return ModelKind::kGenerate;
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
  std::unique_ptr<Forward> fwd;  // decoders
  std::vector<float> hidden;     // (n_ctx, n_embd)
  int64_t n_ctx = 0;

  Impl(const Model& m, const ForwardOptions& opt) : model(m), default_pooling(model_pooling(m)) {
    fwd = std::make_unique<Forward>(m, opt);
    n_ctx = fwd->n_ctx();
    hidden.assign(static_cast<size_t>(n_ctx * m.config.n_embd), 0.0f);
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
  for (size_t i = 0; i < ids.size(); ++i) {
    impl_->run_decoder(ids[i], pool, out[i].data());
    if (p.normalize) l2_normalize(out[i].data(), E);
  }
  return out;
}

std::vector<float> Embedder::rerank(const std::vector<int32_t>& query,
                                    const std::vector<std::vector<int32_t>>& documents,
                                    bool truncate) {
  (void)query;
  (void)documents;
  (void)truncate;
  throw ModelError(model_name(impl_->model) + " is a " + arch_name(impl_->model.config.arch) +
                   " model with no classification head: it cannot rerank (use a reranker, "
                   "e.g. a BertForSequenceClassification GGUF)");
}

}  // namespace hpl
