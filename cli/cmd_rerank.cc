// hpl rerank -m MODEL -q QUERY (-f DOCS | -d DOC...) [--top-n N] [--truncate] [-o text|json]
// Scores each document against the query with a cross-encoder (a bert reranker) and prints
// them best first: "index<TAB>score<TAB>document" lines, or JSON {"results": [{"index",
// "relevance_score", "document"}]} as llama.cpp's server and Jina/Cohere shape them.
#include <algorithm>
#include <cstdio>
#include <numeric>
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

int run_rerank(const std::vector<std::string>& args) {
  EmbedModelOptions mo;
  std::string query, file, format = "text";
  bool have_query = false;
  std::vector<std::string> docs;
  int64_t top_n = 0;
  Options o(
      "usage: hpl rerank -m MODEL.gguf -q QUERY (-f DOCS | -d DOC [-d DOC ...]) [--top-n N] "
      "[-o json]");
  mo.add_to(o);
  o.value({"-q", "--query"}, "QUERY", "the query",
          [&](auto&, const std::string& v) {
            query = v;
            have_query = true;
          })
      .text({"-f", "--file"}, "DOCS", "documents, one per line", file)
      .value({"-d", "--document"}, "DOC", "a document (repeat for several)",
             [&](auto&, const std::string& v) { docs.push_back(v); })
      .number({"--top-n"}, "N", "print only the N best (default: all)", top_n)
      .value({"-o", "--output"}, "FORMAT", "text or json",
             [&](const std::string& opt, const std::string& v) {
               if (v != "text" && v != "json") throw std::runtime_error(opt + ": text or json");
               format = v;
             });
  if (!o.parse(args)) return 0;
  if (mo.model.empty()) o.fail("-m MODEL is required");
  if (!have_query) o.fail("-q QUERY is required");
  if (file.empty() == docs.empty()) o.fail("give documents with -f DOCS or -d DOC (one of them)");
  if (top_n < 0) o.fail("--top-n must be >= 0");
  if (!file.empty()) docs = read_lines(file);
  if (query.empty()) throw std::runtime_error("the query is empty");
  require_utf8(query, "the query");
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].empty()) throw std::runtime_error("document " + std::to_string(i) + " is empty");
    require_utf8(docs[i], "document " + std::to_string(i));
  }

  auto model = Model::load(mo.model);
  if (model_kind(*model) != ModelKind::kRerank) {
    throw std::runtime_error(mo.model + " (" + arch_name(model->config.arch) + ", kind " +
                             model_kind_name(model_kind(*model)) +
                             ") has no classification head: it cannot rerank (use a "
                             "BertForSequenceClassification reranker GGUF)");
  }
  Embedder emb(*model, mo.forward_options(*model));
  auto tok = load_tokenizer(*model->file);
  std::vector<std::vector<int32_t>> doc_ids;
  for (const auto& d : docs) doc_ids.push_back(tok->encode(d, false, false));
  const auto scores = emb.rerank(tok->encode(query, false, false), doc_ids, mo.truncate);
  mo.report(*model, emb);

  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  if (top_n > 0 && static_cast<size_t>(top_n) < order.size()) order.resize(top_n);
  if (format == "json") {
    JsonWriter j;
    j.begin_object().key("model").str(mo.model).key("results").begin_array();
    for (size_t i : order) {
      j.begin_object().key("index").num(static_cast<int64_t>(i));
      j.key("relevance_score").num(static_cast<double>(scores[i]), 9);
      j.key("document").str(docs[i]).end_object();
    }
    j.end_array().end_object();
    std::printf("%s\n", j.text().c_str());
    return 0;
  }
  for (size_t i : order)
    std::printf("%zu\t%.9g\t%s\n", i, static_cast<double>(scores[i]), docs[i].c_str());
  return 0;
}

}  // namespace

HPL_COMMAND("rerank", "score documents against a query with a cross-encoder reranker", run_rerank);

}  // namespace hpl::cli
