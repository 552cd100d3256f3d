// hpl tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--pieces] [--no-bos] [--parse-special]
// Prints the token ids of TEXT space-separated on one line, or with --pieces one
// "id<TAB>piece" per line (the piece with control bytes escaped, special tokens by name).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/options.h"
#include "engine/vocab_loader.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hpl::cli {
namespace {

// Piece text for display: C escapes for control bytes so one token stays on one line, and
// \xNN for bytes that are not a whole UTF-8 character (byte-fallback pieces, partial BPE bytes).
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      const std::string ch = s.substr(i, len);
      if (len > 1 && ch.size() == len && sanitize_utf8(ch) == ch) {
        out += ch;
        i += len;
        continue;
      }
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

int run_tokenize(const std::vector<std::string>& args) {
  std::string model, text, file;
  bool have_text = false, pieces = false, no_bos = false, parse_special = false;
  Options o(
      "usage: hpl tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--pieces] [--no-bos] "
      "[--parse-special]");
  o.text({"-m", "--model"}, "MODEL", "the GGUF model whose tokenizer to use", model)
      .value({"-p", "--prompt"}, "TEXT", "text to tokenize",
             [&](auto&, const std::string& v) {
               text = v;
               have_text = true;
             })
      .text({"-f", "--file"}, "FILE", "read the text from FILE instead", file)
      .flag({"--pieces"}, "one 'id<TAB>piece' per line", pieces)
      .flag({"--no-bos"}, "do not add BOS/EOS even if the model asks for them", no_bos)
      .flag({"--parse-special"}, "turn special-token texts like <start_of_turn> into ids",
            parse_special);
  if (!o.parse(args)) return 0;
  if (model.empty()) o.fail("-m MODEL is required");
  if (have_text == !file.empty()) o.fail("give exactly one of -p TEXT or -f FILE");
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto gguf = GgufFile::open(model);
  auto tok = load_tokenizer(*gguf);
  const std::vector<int32_t> ids = tok->encode(text, !no_bos, parse_special);
  if (pieces) {
    for (int32_t id : ids) {
      std::printf("%d\t%s\n", id, printable(tok->token_to_piece(id, true)).c_str());
    }
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

HPL_COMMAND("tokenize", "print the token ids (or pieces) of a text", run_tokenize);

}  // namespace hpl::cli
