// hpl embed -m MODEL (-p TEXT... | -f FILE | --ids IDS...) [--pooling P] [--normalize |
// --no-normalize] [--truncate] [-o text|json]
// Prints one pooled embedding per text: a line of floats each, or one JSON document.
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/embed_inputs.h"
#include "cli/json_writer.h"
#include "cli/options.h"
#include "engine/embedding.h"
#include "engine/vocab_loader.h"

namespace hpl::cli {
namespace {

std::vector<int32_t> parse_id_list(const std::string& opt, const std::string& v) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == ',')) ++i;
    size_t j = i;
    while (j < v.size() && v[j] != ' ' && v[j] != ',') ++j;
    if (j > i) ids.push_back(to_int32(opt, v.substr(i, j - i)));
    i = j;
  }
  return ids;
}

// The vectors as JSON (model, pooling, and per text its index, tokens and embedding), or as
// text: one line of floats per text.
void print_embeddings(const std::vector<std::vector<float>>& vecs,
                      const std::vector<std::vector<int32_t>>& inputs, const Embedder& emb,
                      const std::string& model, Pooling used, bool normalize, bool json) {
  if (json) {
    JsonWriter j;
    j.begin_object().key("model").str(model).key("pooling").str(pooling_name(used));
    j.key("normalized").boolean(normalize).key("n_embd").num(emb.n_embd()).key("data");
    j.begin_array();
    for (size_t i = 0; i < vecs.size(); ++i) {
      j.begin_object().key("index").num(static_cast<int64_t>(i));
      j.key("n_tokens")
          .num(static_cast<int64_t>(
              std::min<size_t>(inputs[i].size(), static_cast<size_t>(emb.n_ctx()))));
      j.key("embedding").begin_array();
      for (float x : vecs[i]) j.num(static_cast<double>(x), 9);
      j.end_array().end_object();
    }
    j.end_array().end_object();
    std::printf("%s\n", j.text().c_str());
    return;
  }
  for (const auto& v : vecs) {
    std::string line;
    char buf[32];
    for (size_t i = 0; i < v.size(); ++i) {
      std::snprintf(buf, sizeof buf, i ? " %.9g" : "%.9g", static_cast<double>(v[i]));
      line += buf;
    }
    std::printf("%s\n", line.c_str());
  }
}

int run_embed(const std::vector<std::string>& args) {
  EmbedModelOptions mo;
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> id_inputs;
  std::string file, pooling, format = "text";
  bool normalize = true, timings = false;
  Options o(
      "usage: hpl embed -m MODEL.gguf (-p TEXT [-p TEXT ...] | -f FILE) [--pooling P] "
      "[--no-normalize] [-o json]");
  mo.add_to(o);
  o.value({"-p", "--prompt"}, "TEXT", "a text to embed (repeat for several)",
          [&](auto&, const std::string& v) { texts.push_back(v); })
      .text({"-f", "--file"}, "FILE", "texts to embed, one per line", file)
      .value({"--ids"}, "IDS", "token ids to embed instead of a text, e.g. '101 7592 102'",
             [&](const std::string& opt, const std::string& v) {
               id_inputs.push_back(parse_id_list(opt, v));
             })
      .value({"--pooling"}, "P", "mean, cls or last (default: the model's pooling_type)",
             [&](const std::string& opt, const std::string& v) {
               try {
                 (void)parse_pooling(v);
               } catch (const std::invalid_argument& e) {
                 throw std::runtime_error(opt + ": " + e.what());
               }
               pooling = v;
             })
      .flag({"--normalize"}, "L2-normalize each embedding (the default)", normalize, true)
      .flag({"--no-normalize"}, "leave the pooled vectors as they are", normalize, false)
      .flag({"--timings"}, "print the embedding time (tokenized, model loaded) to stderr", timings)
      .value({"-o", "--output"}, "FORMAT", "text (one line of floats per text) or json",
             [&](const std::string& opt, const std::string& v) {
               if (v != "text" && v != "json") throw std::runtime_error(opt + ": text or json");
               format = v;
             });
  if (!o.parse(args)) return 0;
  if (mo.model.empty()) o.fail("-m MODEL is required");
  const int sources = !texts.empty() + !file.empty() + !id_inputs.empty();
  if (sources != 1) o.fail("give texts with -p, or -f FILE, or --ids (exactly one of them)");
  if (!file.empty()) texts = read_lines(file);
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) throw std::runtime_error("text " + std::to_string(i) + " is empty");
    require_utf8(texts[i], "text " + std::to_string(i));
  }

  auto model = Model::load(mo.model);
  Embedder emb(*model, mo.forward_options(*model));
  std::vector<std::vector<int32_t>> inputs = id_inputs;
  if (inputs.empty()) {
    auto tok = load_tokenizer(*model->file);
    for (const auto& t : texts) inputs.push_back(embed_tokens(*tok, t));
  }
  EmbedParams p;
  p.pooling = pooling.empty() ? Pooling::kUnspecified : parse_pooling(pooling);
  p.normalize = normalize;
  p.truncate = mo.truncate;
  const auto t0 = std::chrono::steady_clock::now();
  const auto vecs = emb.embed(inputs, p);
  mo.report(*model, emb);
  if (timings) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t n_tok = 0;
    for (const auto& in : inputs)
      n_tok += std::min<size_t>(in.size(), static_cast<size_t>(emb.n_ctx()));
    std::fprintf(stderr, "embed: %zu texts, %zu tokens in %.2f ms (%.2f texts/s)\n", inputs.size(),
                 n_tok, ms, 1000.0 * static_cast<double>(inputs.size()) / ms);
  }
  const Pooling used = pooling.empty() ? model_pooling(*model) : p.pooling;

  print_embeddings(vecs, inputs, emb, mo.model, used, normalize, format == "json");
  return 0;
}

}  // namespace

HPL_COMMAND("embed", "print pooled embeddings of texts (bert encoders or decoder models)",
            run_embed);

}  // namespace hpl::cli
