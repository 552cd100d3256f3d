#include "runtime/model_identity.h"

#include <cstdio>

namespace hpl {

void Fnv1a::add(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h_ ^= p[i];
    h_ *= 0x100000001b3ull;
  }
}

ModelIdentity model_identity(const Model& m) {
  ModelIdentity id;
  id.file_size = m.file->file_size();
  const ModelConfig& c = m.config;
  Fnv1a h;
  h.add_pod(static_cast<int32_t>(c.arch));
  for (int64_t v : {c.n_embd, c.n_layer, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab,
                    c.rot_dim, c.sliding_window, c.swa_pattern})
    h.add_pod(v);
  for (float v :
       {c.rms_eps, c.rope_base, c.rope_base_swa, c.rope_freq_scale, c.attn_scale, c.embd_scale})
    h.add_pod(v);
  for (bool v : {c.neox_rope, c.gelu, c.qk_norm, c.post_norms}) h.add_pod(static_cast<uint8_t>(v));
  id.hparams_hash = h.value();
  Fnv1a t;
  for (const GgufTensor& g : m.file->tensors()) {
    t.add(g.name.data(), g.name.size());
    t.add_pod(static_cast<uint32_t>(g.type));
    t.add_pod(g.n_dims);
    for (int64_t d : g.ne) t.add_pod(d);
    t.add_pod(g.offset);
  }
  id.tensors_hash = t.value();
  return id;
}

std::string to_string(const ModelIdentity& id) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "size %llu, hparams %016llx, tensors %016llx",
                static_cast<unsigned long long>(id.file_size),
                static_cast<unsigned long long>(id.hparams_hash),
                static_cast<unsigned long long>(id.tensors_hash));
  return buf;
}

}  // namespace hpl
