// Loaded models under a memory budget. acquire() hands out a lease (a shared_ptr): the model
// stays loaded while any lease lives, and is "in use". Loading a model that does not fit the
// budget first unloads idle models (no lease outside the registry), least recently used
// first; a model in use is never unloaded. If it still does not fit, acquire() fails with
// Status::kOutOfMemory naming the sizes. A model's size is its file size (the mapped weights);
// KV caches and scratch belong to sessions and are not counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model.h"
#include "runtime/model_identity.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

struct LoadedModel {
  std::string path;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelIdentity identity;
  size_t bytes = 0;  // counted against the budget
};

class ModelRegistry {
 public:
  static constexpr size_t kUnlimited = SIZE_MAX;
  explicit ModelRegistry(size_t budget_bytes = kUnlimited) : budget_(budget_bytes) {}

  // Returns the model at `path`, loading it (and evicting idle models) if needed. Throws
  // RuntimeError: kIo (missing file), kModel (bad file), kOutOfMemory (over budget).
  std::shared_ptr<const LoadedModel> acquire(const std::string& path);

  // Unloads the model if it is loaded and idle; false if it is in use or not loaded.
  bool unload(const std::string& path);
  // Lowering the budget evicts idle models until the loaded ones fit (or only busy ones stay).
  void set_budget(size_t bytes);

  size_t budget() const;
  size_t used_bytes() const;
  bool is_loaded(const std::string& path) const;
  std::vector<std::string> loaded_paths() const;  // most recently used first

 private:
  struct Entry {
    std::shared_ptr<const LoadedModel> model;
    uint64_t last_use = 0;
  };
  // Evicts idle models, LRU first, until used + need <= budget. Caller holds mu_.
  void evict_for(size_t need);
  static bool idle(const Entry& e) { return e.model.use_count() == 1; }

  mutable std::mutex mu_;
  size_t budget_;
  uint64_t clock_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace hpl
