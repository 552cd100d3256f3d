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

#include <string>

#include "runtime/session.h"

namespace hpl {

inline constexpr uint32_t kSessionFileVersion = 3;  // 2: before the KV cache type (was f16)

// Throws RuntimeError kIo when the file cannot be written.
void save_session_file(Session& s, const std::string& path);

// Replaces the session's conversation and KV cache with the file's. The session is unchanged
// when this throws RuntimeError: kIo (cannot read, truncated, bad checksum, not a session
// file), kSessionMismatch (another model, version or KV cache type, or more positions than
// the session's context).
void load_session_file(Session& s, const std::string& path);

}  // namespace hpl
