// Block-format converter for the Python tests (tests/python/test_quant_formats.py):
//   quant_tool dequant TYPE N < raw_blocks > f32        (N elements, TYPE by ggml name: q4_K)
//   quant_tool quant TYPE N [importance.f32] < f32 > raw_blocks
// Binary little-endian on stdin/stdout; errors go to stderr with exit code 1.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel/quant.h"
#include "kernel/types.h"

namespace {

hpl::DType parse_type(const std::string& name) {
  for (uint32_t id = 0; id < 64; ++id) {
    hpl::TypeTraits tr = hpl::type_traits(id);
    if (tr.known && name == tr.name) return static_cast<hpl::DType>(id);
  }
  throw std::runtime_error("unknown type name '" + name + "' (ggml spelling, e.g. q4_K)");
}

int64_t parse_count(const char* s) {
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || v < 0) {
    throw std::runtime_error(std::string("bad element count '") + s + "'");
  }
  return v;
}

std::vector<uint8_t> read_all(std::FILE* f) {
  std::vector<uint8_t> buf;
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0)
    buf.insert(buf.end(), chunk, chunk + got);
  return buf;
}

std::vector<float> read_f32_file(const std::string& path, int64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() != static_cast<size_t>(n) * 4) {
    throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                             std::to_string(n * 4) + " (N f32)");
  }
  std::vector<float> v(static_cast<size_t>(n));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

void write_all(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, stdout) != n) throw std::runtime_error("write to stdout failed");
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr,
                 "usage: quant_tool dequant TYPE N < blocks > f32\n"
                 "       quant_tool quant TYPE N [importance.f32] < f32 > blocks\n");
    return 2;
  }
  const std::string mode = argv[1];
  const hpl::DType t = parse_type(argv[2]);
  const int64_t n = parse_count(argv[3]);
  const hpl::TypeTraits tr = hpl::type_traits(t);
  if (n % tr.block_elems != 0) {
    throw std::runtime_error(std::string(tr.name) + ": N = " + std::to_string(n) +
                             " is not a multiple of the block size " +
                             std::to_string(tr.block_elems));
  }
  const size_t nbytes = hpl::row_bytes(t, n);
  std::vector<uint8_t> in = read_all(stdin);
  if (mode == "dequant") {
    if (argc != 4) throw std::runtime_error("dequant takes no importance file");
    if (in.size() != nbytes) {
      throw std::runtime_error("stdin has " + std::to_string(in.size()) + " bytes, " + tr.name +
                               " x " + std::to_string(n) + " needs " + std::to_string(nbytes));
    }
    std::vector<float> y(static_cast<size_t>(n));
    hpl::kernel::dequantize_row(t, in.data(), y.data(), n);
    write_all(y.data(), y.size() * 4);
  } else if (mode == "quant") {
    if (in.size() != static_cast<size_t>(n) * 4) {
      throw std::runtime_error("stdin has " + std::to_string(in.size()) + " bytes, expected " +
                               std::to_string(n * 4) + " (N f32)");
    }
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), in.data(), in.size());
    std::vector<float> imp;
    if (argc == 5) imp = read_f32_file(argv[4], n);
    std::vector<uint8_t> y(nbytes);
    hpl::kernel::quantize_row(t, x.data(), y.data(), n, imp.empty() ? nullptr : imp.data());
    write_all(y.data(), y.size());
  } else {
    throw std::runtime_error("unknown mode '" + mode + "' (dequant or quant)");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_tool: %s\n", e.what());
    return 1;
  }
}
