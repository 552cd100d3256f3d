#include "runtime/model_registry.h"

#include <algorithm>
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

std::shared_ptr<const LoadedModel> ModelRegistry::acquire(const std::string& path) {
  // Round k > 0 first asks the holders of the k-th least recently used model in use to give
  // back their idle leases, then evicts again.
  std::vector<std::string> holders;
  for (size_t k = 0;; ++k) {
    if (k > 0) release_idle({holders[k - 1]});
    std::lock_guard<std::mutex> lock(mu_);
    for (Entry& e : entries_) {
      if (e.model->path == path) {
        e.last_use = ++clock_;
        return e.model;
      }
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw RuntimeError(Status::kIo, path + ": cannot open model: " + ec.message());
    const size_t need = static_cast<size_t>(size);
    evict_for(need);
    if (fits(need)) {
      entries_.push_back({load_model(path, need), ++clock_});
      return entries_.back().model;
    }
    if (k == 0) holders = busy_paths_lru();
    if (need <= budget_ && k < holders.size()) continue;
    size_t used = 0;
    std::string busy;
    for (const Entry& e : entries_) {
      used += e.bytes();
      busy += (busy.empty() ? "" : ", ") + e.model->path;
    }
    throw RuntimeError(Status::kOutOfMemory,
                       path + ": over the memory budget: needs " + std::to_string(need) +
                           " bytes, budget " + std::to_string(budget_) + ", " +
                           std::to_string(used) + " bytes held by models in use" +
                           (busy.empty() ? "" : " (" + busy + ")"));
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
