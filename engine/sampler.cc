#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace hpl {

namespace sampling {

namespace {
bool by_logit_desc(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}
bool is_sorted_desc(const std::vector<Candidate>& c) {
  return std::is_sorted(c.begin(), c.end(), by_logit_desc);
}
}  // namespace

void penalize(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent, float penalty) {
  if (penalty == 1.0f || recent.empty()) return;
  std::vector<int32_t> ids(recent);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab) continue;
    float& l = logits[id];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

void top_k(std::vector<Candidate>& c, int32_t k) {
  if (k <= 0 || static_cast<size_t>(k) >= c.size()) {
    if (!is_sorted_desc(c)) std::sort(c.begin(), c.end(), by_logit_desc);
    return;
  }
  std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit_desc);
  c.resize(static_cast<size_t>(k));
}

void softmax(std::vector<Candidate>& c, float temp) {
  if (c.empty()) return;
  if (!is_sorted_desc(c)) std::sort(c.begin(), c.end(), by_logit_desc);
  const double t = temp > 0.0f ? temp : 1.0;
  const double mx = c[0].logit;
  double sum = 0.0;
  for (Candidate& x : c) {
    double e = std::exp((x.logit - mx) / t);
    x.p = static_cast<float>(e);
    sum += e;
  }
  for (Candidate& x : c) x.p = static_cast<float>(x.p / sum);
}

void top_p(std::vector<Candidate>& c, float p) {
  if (p >= 1.0f || c.empty()) return;
  softmax(c);
  double cum = 0.0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  c.resize(std::max<size_t>(keep, 1));
}

void min_p(std::vector<Candidate>& c, float p) {
  if (p <= 0.0f || c.empty()) return;
  softmax(c);
  const float thresh = p * c[0].p;
  size_t keep = 1;
  while (keep < c.size() && c[keep].p >= thresh) ++keep;
  c.resize(keep);
}

size_t draw(const std::vector<Candidate>& c, double u) {
  double cum = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (u < cum) return i;
  }
  return c.empty() ? 0 : c.size() - 1;  // rounding: u beyond the summed probabilities
}

}  // namespace sampling

Sampler::Sampler(const SamplerParams& p, int64_t n_vocab) : p_(p), n_vocab_(n_vocab) {
  if (n_vocab <= 0) throw std::invalid_argument("Sampler: n_vocab must be > 0");
  if (!(p.repeat_penalty > 0.0f)) {
    throw std::invalid_argument("repeat penalty must be > 0 (got " +
                                std::to_string(p.repeat_penalty) + ")");
  }
  if (p.repeat_last_n < 0) throw std::invalid_argument("repeat-last-n must be >= 0");
  if (std::isnan(p.temp) || std::isnan(p.top_p) || std::isnan(p.min_p)) {
    throw std::invalid_argument("sampling parameters must not be NaN");
  }
  reset();
}

void Sampler::reset() {
  recent_.clear();
  rng_.seed(p_.seed);
}

void Sampler::accept(int32_t id) {
  if (p_.repeat_last_n <= 0) return;
  recent_.push_back(id);
  while (recent_.size() > static_cast<size_t>(p_.repeat_last_n)) recent_.pop_front();
}

double Sampler::uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::accept_generated(int32_t id) {
  accept(id);
  if (constraint_) constraint_->accept(id);
}

void Sampler::distribution(const float* logits, std::vector<Candidate>& out) {
  const float* l = logits;
  if (constraint_) {
    work_.assign(logits, logits + n_vocab_);
    constraint_->mask(work_.data());
    l = work_.data();
  }
  if (p_.repeat_penalty != 1.0f && !recent_.empty()) {
    if (l != work_.data()) work_.assign(logits, logits + n_vocab_);
    recent_vec_.assign(recent_.begin(), recent_.end());
    sampling::penalize(work_.data(), n_vocab_, recent_vec_, p_.repeat_penalty);
    l = work_.data();
  }
  if (p_.temp <= 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab_; ++i) {
      if (l[i] > l[best]) best = i;
    }
    out.assign(1, {best, l[best], 1.0f});
    return;
  }
  out.resize(static_cast<size_t>(n_vocab_));
  for (int32_t i = 0; i < n_vocab_; ++i) out[i] = {i, l[i], 0.0f};
  if (constraint_)  // masked tokens are no candidates (not even by rounding in draw())
    std::erase_if(out, [](const Candidate& c) { return std::isinf(c.logit) && c.logit < 0; });
  sampling::top_k(out, p_.top_k);
  sampling::top_p(out, p_.top_p);
  sampling::min_p(out, p_.min_p);
  sampling::softmax(out, p_.temp);
}

int32_t Sampler::sample(const float* logits) {
  distribution(logits, cand_);
  if (p_.temp <= 0.0f) return cand_[0].id;  // greedy draws nothing
  return cand_[sampling::draw(cand_, uniform())].id;
}

}  // namespace hpl
