// Saving a session to a file and restoring it, so an app killed in the background resumes a
// conversation without re-evaluating it. Little-endian layout, version 3:
//   "HPLSESS\0"  u32 version  u32 KV cache type (GGUF type id: 0 f32, 1 f16, 8 q8_0, 2 q4_0)
//   model identity: u64 file_size  u64 hparams_hash  u64 tensors_hash
//   i64 n_layer  i64 kv_dim  i64 n_ctx(at save)  i64 n_past  i64 n_tokens
//   i32 tokens[n_tokens]
//   u32 n_exchanges, each: str prompt, u32 n_messages x (str role, str content), str response,
//     u8 closed
//     (str = u64 length + bytes)
//   per layer: i64 first, K positions [first, n_past) then V positions [first, n_past), a
//     row of kv_dim values in the cache type each; first is 0 except on sliding-window
//     layers, which only keep their window
//   u64 FNV-1a of every byte before it
// The file is written to "<path>.tmp" and renamed, so a crash never leaves half a file.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "runtime/session.h"

namespace hpl {

inline constexpr uint32_t kSessionFileVersion = 3;  // 2: before the KV cache type (was f16)

// The model a state file belongs to.
struct LoadedModelInfo {
  const ModelConfig& config;
  const ModelIdentity& identity;
  const std::string& path;  // for messages
};
struct StateFileContent {
  std::vector<int32_t> tokens;
  std::vector<Exchange> exchanges;
};

// The file of a KV cache (its n_past() positions) with the tokens and exchanges it goes with.
// whole_window: sliding-window layers store every position they still hold (so the state can
// be rewound, as a prompt-cache prefix may be), not only those the next position needs.
void save_state_file(KvCache& kv, const LoadedModelInfo& m, std::span<const int32_t> tokens,
                     const std::vector<Exchange>& exchanges, bool whole_window,
                     const std::string& path);
// Validates the whole file (as load_session_file), then replaces kv's contents with its KV and
// returns its tokens and exchanges; kv is unchanged when this throws.
StateFileContent load_state_file(KvCache& kv, const LoadedModelInfo& m, const std::string& path);

// Throws RuntimeError kIo when the file cannot be written.
void save_session_file(Session& s, const std::string& path);

// Replaces the session's conversation and KV cache with the file's. The session is unchanged
// when this throws RuntimeError: kIo (cannot read, truncated, bad checksum, not a session
// file), kSessionMismatch (another model, version or KV cache type, or more positions than
// the session's context).
void load_session_file(Session& s, const std::string& path);

}  // namespace hpl
