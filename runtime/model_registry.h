// Loaded models under a memory budget. acquire() hands out a lease (a shared_ptr): the model
// stays loaded while any lease lives, and is "in use". Loading a model that does not fit the
// budget first unloads idle models (no lease outside the registry), least recently used
// first; a model in use is never unloaded. If it still does not fit, acquire() fails with
// Status::kOutOfMemory naming the sizes. A model's size is its file size (the mapped weights)
// plus what its holders charge() for states they keep only for reuse (the runtime's prompt
// cache); KV caches and scratch of sessions are not counted.
//
// Some leases are only cached, not in use: a runtime keeps its stateless-request session (and
// so its lease) between requests. Such holders register a releaser. When a load (or a lower
// budget) does not fit after evicting idle models, the registry asks the holders of the models
// in use, least recently used first, to give back what they hold while idle, then evicts
// again. A runtime marks its cached session idle before it delivers a request's terminal
// event, so a model whose request has finished can always be evicted.
//
// Leases are transient (a request's, released when it ends) or pinned (a session's, held until
// the session is freed). acquire_waiting() is acquire() for a request that may wait: when the
// model does not fit only because of transient leases, it waits for them to end (or for the
// caller to cancel) instead of failing; pinned leases in the way still fail it at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/grammar_constraint.h"
#include "engine/model.h"
#include "runtime/model_identity.h"
#include "tokenizer/tokenizer.h"

namespace hpl {

struct LoadedModel {
  std::string path;
  std::unique_ptr<Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;  // shared: a holder may keep it without the weights
  ModelIdentity identity;
  VocabTrieCache vocab_trie;  // for grammar-constrained output, built on first use
  size_t bytes = 0;           // counted against the budget
};

// How long a lease is held: kPinned (a session's) counts as in use until released, with no
// end in sight, so nobody waits for it.
enum class Hold { kTransient, kPinned };

class ModelRegistry {
 public:
  static constexpr size_t kUnlimited = SIZE_MAX;
  explicit ModelRegistry(size_t budget_bytes = kUnlimited) : budget_(budget_bytes) {}

  // Returns the model at `path`, loading it (and evicting idle models) if needed. Throws
  // RuntimeError: kIo (missing file), kModel (bad file), kOutOfMemory (over budget).
  std::shared_ptr<const LoadedModel> acquire(const std::string& path, Hold hold = Hold::kTransient);
  // acquire() that, while only transient leases keep the model out, waits for them to end
  // (woken by every released lease and notify_idle()). Returns null once cancelled() is true
  // (polled at least every 50 ms). Still throws kOutOfMemory when the model is larger than
  // the budget or pinned leases leave no room, and kIo / kModel as acquire().
  std::shared_ptr<const LoadedModel> acquire_waiting(const std::string& path,
                                                     const std::function<bool()>& cancelled);
  // The same for several models used together (a target and its speculative draft): all are
  // leased, or none; the room they need is found for all at once, so a request never holds
  // one while waiting for room for the other. Leases in the order of paths (a path given
  // twice gets the same model twice).
  std::vector<std::shared_ptr<const LoadedModel>> acquire(const std::vector<std::string>& paths,
                                                          Hold hold = Hold::kTransient);
  std::vector<std::shared_ptr<const LoadedModel>> acquire_waiting(
      const std::vector<std::string>& paths, const std::function<bool()>& cancelled);
  // A holder's cached lease became idle (releasable): wakes acquire_waiting() to try again.
  void notify_idle();

  // Unloads the model if it is loaded and idle; false if it is in use or not loaded.
  bool unload(const std::string& path);
  // Lowering the budget evicts idle models until the loaded ones fit (asking holders to release
  // cached leases as acquire() does; models really in use stay, even over the budget).
  void set_budget(size_t bytes);

  size_t budget() const;
  size_t used_bytes() const;
  bool is_loaded(const std::string& path) const;
  std::vector<std::string> loaded_paths() const;  // most recently used first

  // Counts `bytes` more against the budget as the model's (loaded, at path): kept for reuse,
  // so never by unloading anything. False, counting nothing, when they do not fit. The
  // holder gives them back with discharge() (also from its releaser).
  bool charge(const std::string& path, size_t bytes);
  void discharge(const std::string& path, size_t bytes);

  // Registers fn, which drops the idle leases its owner caches on the model at path (and
  // leaves leases in use alone). fn runs on the thread that loads or sets the budget, without
  // the registry's lock; it must not wait for work in progress. Returns a handle.
  uint64_t add_releaser(const std::string& path, std::function<void()> fn);
  // Once this returns the releaser is not running and is never called again.
  void remove_releaser(uint64_t handle);

 private:
  struct Entry {
    std::shared_ptr<const LoadedModel> model;  // one reference per live lease, plus this one
    std::shared_ptr<std::atomic<int>> pins;    // live pinned leases
    uint64_t last_use = 0;
    size_t charged = 0;  // charge()d by its holders
    size_t bytes() const { return model->bytes + charged; }
  };
  // Wakes acquire_waiting(); shared with the leases, which may outlive the registry.
  struct Waiters {
    std::mutex mu;
    std::condition_variable cv;
    uint64_t generation = 0;  // bumped by every wake-up
    void wake();
  };
  // One attempt of acquire(): the leases, or none with why (the kOutOfMemory message) and
  // waitable set (only transient leases keep the models out). Throws kIo / kModel.
  std::vector<std::shared_ptr<const LoadedModel>> try_acquire(const std::vector<std::string>& paths,
                                                              Hold hold, std::string* why,
                                                              bool* waitable = nullptr);
  // A lease on e: the registry sees it in e.model's use count; its release wakes waiters.
  std::shared_ptr<const LoadedModel> lease(const Entry& e, Hold hold);
  // Evicts idle models, LRU first, until used + need <= budget. Caller holds mu_.
  void evict_for(size_t need);
  static bool idle(const Entry& e) { return e.model.use_count() == 1; }
  bool fits(size_t need) const;                     // caller holds mu_
  size_t used() const;                              // caller holds mu_
  std::vector<std::string> busy_paths_lru() const;  // caller holds mu_
  // Calls the releasers of the models at paths, in order. Caller holds no registry lock.
  void release_idle(const std::vector<std::string>& paths);

  struct Releaser {
    std::string path;
    std::function<void()> fn;
  };

  std::shared_ptr<Waiters> waiters_ = std::make_shared<Waiters>();
  mutable std::mutex mu_;
  size_t budget_;
  uint64_t clock_ = 0;
  std::vector<Entry> entries_;

  // Held while releasers run, so remove_releaser() waits for a running one. Never taken with
  // mu_ held.
  std::mutex release_mu_;
  std::map<uint64_t, Releaser> releasers_;  // guarded by release_mu_
  uint64_t next_releaser_ = 1;
};

}  // namespace hpl
