#include "runtime/model_registry.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <new>

#include "engine/vocab_loader.h"
#include "runtime/runtime_types.h"

namespace hpl {

namespace {

std::shared_ptr<const LoadedModel> load_model(const std::string& path, size_t bytes) {
  auto m = std::make_shared<LoadedModel>();
  m->path = path;
  m->bytes = bytes;
  try {
    m->model = Model::load(path);
    m->tokenizer = load_tokenizer(*m->model->file);
  } catch (const std::bad_alloc&) {
    throw RuntimeError(Status::kOutOfMemory, path + ": out of memory while loading");
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kModel, e.what());
  }
  m->identity = model_identity(*m->model);
  return m;
}

}  // namespace

void ModelRegistry::Waiters::wake() {
  {
    std::lock_guard<std::mutex> lock(mu);
    ++generation;
  }
  cv.notify_all();
}

void ModelRegistry::notify_idle() {
  waiters_->wake();
}

std::shared_ptr<const LoadedModel> ModelRegistry::lease(const Entry& e, Hold hold) {
  const bool pinned = hold == Hold::kPinned;
  if (pinned) e.pins->fetch_add(1);
  // The deleter gives back the lease's reference (and pin), then wakes the waiters.
  return std::shared_ptr<const LoadedModel>(
      e.model.get(),
      [owner = e.model, pins = e.pins, pinned, w = waiters_](const LoadedModel*) mutable {
        if (pinned) pins->fetch_sub(1);
        owner.reset();
        w->wake();
      });
}

std::shared_ptr<const LoadedModel> ModelRegistry::acquire(const std::string& path, Hold hold) {
  return acquire(std::vector<std::string>{path}, hold)[0];
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::acquire(
    const std::vector<std::string>& paths, Hold hold) {
  std::string why;
  auto m = try_acquire(paths, hold, &why);
  if (m.empty()) throw RuntimeError(Status::kOutOfMemory, why);
  return m;
}

std::shared_ptr<const LoadedModel> ModelRegistry::acquire_waiting(
    const std::string& path, const std::function<bool()>& cancelled) {
  auto m = acquire_waiting(std::vector<std::string>{path}, cancelled);
  return m.empty() ? nullptr : m[0];
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::acquire_waiting(
    const std::vector<std::string>& paths, const std::function<bool()>& cancelled) {
  for (;;) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(waiters_->mu);
      seen = waiters_->generation;
    }
    std::string why;
    bool waitable = false;
    auto m = try_acquire(paths, Hold::kTransient, &why, &waitable);
    if (!m.empty()) return m;
    if (!waitable) throw RuntimeError(Status::kOutOfMemory, why);
    if (cancelled && cancelled()) return {};
    std::unique_lock<std::mutex> lock(waiters_->mu);
    waiters_->cv.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return waiters_->generation != seen; });
  }
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::try_acquire(
    const std::vector<std::string>& paths, Hold hold, std::string* why, bool* waitable) {
  // Round k > 0 first asks the holders of the k-th least recently used model in use to give
  // back their idle leases, then evicts again.
  std::vector<std::string> holders;
  for (size_t k = 0;; ++k) {
    if (k > 0) release_idle({holders[k - 1]});
    std::vector<std::shared_ptr<const LoadedModel>> got(paths.size());
    std::lock_guard<std::mutex> lock(mu_);
    // The loaded ones leased first (so evicting cannot take them), the sizes of the others.
    std::vector<size_t> missing, sizes;  // first occurrences of the unloaded paths, file sizes
    size_t need = 0, ours = 0;           // ours: the loaded ones' bytes, unless a session pins them
    for (size_t i = 0; i < paths.size(); ++i) {
      const auto dup = std::find(paths.begin(), paths.begin() + i, paths[i]) - paths.begin();
      if (static_cast<size_t>(dup) < i) continue;  // filled in below
      for (Entry& e : entries_) {
        if (e.model->path == paths[i]) {
          e.last_use = ++clock_;
          if (e.pins->load() == 0) ours += e.bytes();
          got[i] = lease(e, hold);
          break;
        }
      }
      if (got[i]) continue;
      std::error_code ec;
      const auto size = std::filesystem::file_size(paths[i], ec);
      if (ec) throw RuntimeError(Status::kIo, paths[i] + ": cannot open model: " + ec.message());
      need += static_cast<size_t>(size);
      missing.push_back(i);
      sizes.push_back(static_cast<size_t>(size));
    }
    auto fill_duplicates = [&] {
      for (size_t i = 0; i < paths.size(); ++i) {
        if (got[i]) continue;
        const auto j = std::find(paths.begin(), paths.begin() + i, paths[i]) - paths.begin();
        got[i] = got[static_cast<size_t>(j)];
      }
      return got;
    };
    if (missing.empty()) return fill_duplicates();
    evict_for(need);
    if (fits(need)) {
      for (size_t j = 0; j < missing.size(); ++j) {
        const size_t i = missing[j];
        entries_.push_back(
            {load_model(paths[i], sizes[j]), std::make_shared<std::atomic<int>>(0), ++clock_});
        got[i] = lease(entries_.back(), hold);
      }
      return fill_duplicates();
    }
    got.clear();  // none held while waiting or failing
    if (k == 0) holders = busy_paths_lru();
    if (need <= budget_ && k < holders.size()) continue;
    size_t used = 0, pinned = 0;
    std::string busy;
    for (const Entry& e : entries_) {
      used += e.bytes();
      if (e.pins->load() > 0) pinned += e.bytes();
      busy += (busy.empty() ? "" : ", ") + e.model->path;
    }
    std::string names;
    for (size_t i : missing) names += (names.empty() ? "" : " and ") + paths[i];
    // Room once the transient leases end (not counting the models of paths already loaded,
    // which stay): worth waiting for.
    if (waitable) *waitable = ours + need <= budget_ && pinned + ours + need <= budget_;
    *why = names + ": over the memory budget: needs " + std::to_string(need) + " bytes, budget " +
           std::to_string(budget_) + ", " + std::to_string(used) + " bytes held by models in use" +
           (busy.empty() ? "" : " (" + busy + ")") +
           (pinned ? ", " + std::to_string(pinned) + " of them by live sessions" : "");
    return {};
  }
}

size_t ModelRegistry::used() const {
  size_t u = 0;
  for (const Entry& e : entries_) u += e.bytes();
  return u;
}

bool ModelRegistry::fits(size_t need) const {
  return need <= budget_ && used() + need <= budget_;
}

bool ModelRegistry::charge(const std::string& path, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : entries_) {
    if (e.model->path != path) continue;
    if (!fits(bytes)) return false;
    e.charged += bytes;
    return true;
  }
  return false;
}

void ModelRegistry::discharge(const std::string& path, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : entries_)
    if (e.model->path == path) e.charged -= std::min(bytes, e.charged);
}

void ModelRegistry::evict_for(size_t need) {
  if (need > budget_) return;  // never fits: keep what is loaded
  while (!fits(need)) {
    auto lru = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (idle(*it) && (lru == entries_.end() || it->last_use < lru->last_use)) lru = it;
    if (lru == entries_.end()) return;  // only models in use remain
    entries_.erase(lru);
  }
}

std::vector<std::string> ModelRegistry::busy_paths_lru() const {
  std::vector<const Entry*> v;
  for (const Entry& e : entries_)
    if (!idle(e)) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->last_use < b->last_use; });
  std::vector<std::string> out;
  for (auto* e : v) out.push_back(e->model->path);
  return out;
}

void ModelRegistry::release_idle(const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> lock(release_mu_);
  for (const std::string& path : paths)
    for (auto& [handle, r] : releasers_)
      if (r.path == path) r.fn();
}

uint64_t ModelRegistry::add_releaser(const std::string& path, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(release_mu_);
  const uint64_t h = next_releaser_++;
  releasers_[h] = {path, std::move(fn)};
  return h;
}

void ModelRegistry::remove_releaser(uint64_t handle) {
  std::lock_guard<std::mutex> lock(release_mu_);
  releasers_.erase(handle);
}

bool ModelRegistry::unload(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->model->path == path) {
      if (!idle(*it)) return false;
      entries_.erase(it);
      return true;
    }
  }
  return false;
}

void ModelRegistry::set_budget(size_t bytes) {
  std::vector<std::string> holders;
  {
    std::lock_guard<std::mutex> lock(mu_);
    budget_ = bytes;
    evict_for(0);
    if (fits(0)) return;
    holders = busy_paths_lru();
  }
  for (const std::string& h : holders) {
    release_idle({h});
    std::lock_guard<std::mutex> lock(mu_);
    evict_for(0);
    if (fits(0)) return;
  }
}

size_t ModelRegistry::budget() const {
  std::lock_guard<std::mutex> lock(mu_);
  return budget_;
}

size_t ModelRegistry::used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used();
}

bool ModelRegistry::is_loaded(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& e : entries_)
    if (e.model->path == path) return true;
  return false;
}

std::vector<std::string> ModelRegistry::loaded_paths() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Entry*> v;
  for (const Entry& e : entries_) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->last_use > b->last_use; });
  std::vector<std::string> out;
  for (auto* e : v) out.push_back(e->model->path);
  return out;
}

}  // namespace hpl
