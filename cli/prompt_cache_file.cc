#include "cli/prompt_cache_file.h"

#include <cstdio>
#include <filesystem>

#include "runtime/prompt_cache.h"

namespace hpl::cli {

int64_t load_prompt_cache(Forward& fwd, const LoadedModelInfo& m, std::span<const int32_t> ids,
                          const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return 0;
  const StateFileContent c = load_state_file(fwd.cache(), m, file);  // throws a clear error
  const KvCache& kv = fwd.cache();
  const std::span<const int32_t> held =
      std::span<const int32_t>(c.tokens).first(static_cast<size_t>(kv.n_past()));
  const auto max_keep = static_cast<int64_t>(ids.size()) - 1;
  const int64_t keep = reusable_prefix(kv.layout(), kv.first_positions(), held, ids, max_keep);
  fwd.truncate(keep);
  if (keep < static_cast<int64_t>(held.size()))
    std::fprintf(stderr, "prompt cache %s: holds %zu tokens, %lld of them are this prompt's\n",
                 file.c_str(), held.size(), static_cast<long long>(keep));
  return fwd.n_past();
}

int64_t save_prompt_cache(Forward& fwd, const LoadedModelInfo& m, std::span<const int32_t> ids,
                          const std::string& file) {
  const auto n = static_cast<int64_t>(ids.size()) - 1;
  const int64_t past = fwd.n_past();
  if (n <= past) return 0;
  fwd.eval(ids.data() + past, n - past, nullptr);
  save_state_file(fwd.cache(), m, ids.first(static_cast<size_t>(n)), {}, /*whole_window=*/true,
                  file);
  return n;
}

}  // namespace hpl::cli
