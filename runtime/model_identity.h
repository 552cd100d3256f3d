// A fingerprint of a loaded model, so a saved session is only restored into the model that
// produced its KV cache: the file size, a hash of the hyperparameters and a hash of the tensor
// table (names, types, shapes, offsets). Cheap: no weight bytes are read.
#pragma once

#include <cstdint>
#include <string>

#include "engine/model.h"

namespace hpl {

struct ModelIdentity {
  uint64_t file_size = 0;
  uint64_t hparams_hash = 0;
  uint64_t tensors_hash = 0;
  bool operator==(const ModelIdentity&) const = default;
};

ModelIdentity model_identity(const Model& m);
std::string to_string(const ModelIdentity& id);  // "size 1185376, hparams 0x..., tensors 0x..."

// 64-bit FNV-1a, for fingerprints and file checksums (not cryptographic).
class Fnv1a {
 public:
  void add(const void* data, size_t n);
  template <class T>
  void add_pod(const T& v) {
    add(&v, sizeof v);
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace hpl
