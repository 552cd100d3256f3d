// libFuzzer target for the GGUF reader: any input must either parse or throw GgufError,
// never crash, leak or read out of bounds. On success every parsed value and every tensor
// byte range is touched, so a pointer or count the validator let through is exercised.
// Packed tensors (hpl's ids, gguf/gguf.h) must come out with the shape the reader promises.
// Built by tests/fuzz/run-gguf-fuzz.sh with clang++ -fsanitize=fuzzer,address,undefined.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "gguf/gguf.h"

namespace {

volatile uint64_t g_sink;  // keeps the reads from being optimized away

uint64_t touch(const hpl::GgufValue& v) {
  uint64_t h = static_cast<uint64_t>(v.type) + v.offset;
  switch (v.type) {
    case hpl::GgufType::STRING:
      for (char c : v.str) h = h * 31 + static_cast<unsigned char>(c);
      break;
    case hpl::GgufType::ARRAY:
      for (uint64_t i = 0; i < v.count; ++i) h += touch(hpl::gguf_array_elem(v, i));
      break;
    default:
      h += v.num.u;
      break;
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<hpl::GgufFile> f;
  try {
    f = hpl::GgufFile::from_memory(data, size, "fuzz.gguf");
  } catch (const hpl::GgufError&) {
    return 0;
  }
  uint64_t h = f->version() + f->alignment() + f->data_offset() + f->architecture().size();
  for (const hpl::GgufKV& kv : f->metadata()) {
    h += kv.key.size() + touch(kv.value);
    // Lookup must find every key (except one literally starting with "{arch}", which
    // find() resolves to the architecture's key instead).
    if (kv.key.rfind("{arch}", 0) != 0 && f->find(kv.key) != &kv.value) __builtin_trap();
    // Typed getters either convert or throw GgufError.
    try {
      h += f->u32(kv.key);
    } catch (const hpl::GgufError&) {
    }
    try {
      h += f->i64(kv.key);
    } catch (const hpl::GgufError&) {
    }
    try {
      h += std::bit_cast<uint32_t>(f->f32(kv.key));
    } catch (const hpl::GgufError&) {
    }
    try {
      h += f->str(kv.key).size();
    } catch (const hpl::GgufError&) {
    }
    try {
      h += f->str_array(kv.key).size();
    } catch (const hpl::GgufError&) {
    }
    try {
      h += f->f32_array(kv.key).size();
    } catch (const hpl::GgufError&) {
    }
    try {
      h += f->int_array(kv.key).size();
    } catch (const hpl::GgufError&) {
    }
  }
  try {
    h += f->u32("{arch}.block_count");
  } catch (const hpl::GgufError&) {
  }
  for (const hpl::GgufTensor& t : f->tensors()) {
    if (f->tensor(t.name) != &t) __builtin_trap();
    if (t.n_bytes == 0 || t.data < data || t.data + t.n_bytes > data + size) __builtin_trap();
    h += t.data[0] + t.data[t.n_bytes - 1] + static_cast<uint64_t>(t.n_elements()) + t.n_rows();
    // Packed tensors only in a packed file, 2-D, in whole groups of 8 rows of whole blocks.
    if (hpl::is_packed_type(t.type) &&
        (f->packed_layout() == 0 || t.n_rows() % 8 != 0 || t.ne[2] != 1 || t.rows_unaligned)) {
      __builtin_trap();
    }
  }
  g_sink = h;
  return 0;
}
