#include "cli/bench_compare.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "grammar/json_value.h"

namespace hpl::cli {

namespace {

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

using grammar::JsonValue;

double number_or(const JsonValue& o, std::string_view k, double fallback) {
  const JsonValue* v = o.get(k);
  return v && v->is(JsonValue::Kind::kNumber) ? v->number() : fallback;
}

std::string string_or(const JsonValue& o, std::string_view k, const std::string& fallback) {
  const JsonValue* v = o.get(k);
  return v && v->is(JsonValue::Kind::kString) ? v->text : fallback;
}

BenchEntry entry(const JsonValue& o, const std::string& where) {
  if (!o.is(JsonValue::Kind::kObject)) throw std::runtime_error(where + ": not an object");
  const JsonValue* ts = o.get("avg_ts");
  if (!ts || !ts->is(JsonValue::Kind::kNumber))
    throw std::runtime_error(where + ": no numeric avg_ts");
  const int64_t pp = static_cast<int64_t>(number_or(o, "n_prompt", 0));
  const int64_t tg = static_cast<int64_t>(number_or(o, "n_gen", 0));
  const int64_t depth = static_cast<int64_t>(number_or(o, "n_depth", 0));
  BenchEntry e;
  e.model = basename_of(string_or(o, "model_filename", string_or(o, "model_type", "?")));
  if (pp > 0 && tg > 0) {
    e.test = "pp" + std::to_string(pp) + "+tg" + std::to_string(tg);
  } else if (pp > 0) {
    e.test = "pp" + std::to_string(pp);
  } else if (tg > 0) {
    e.test = "tg" + std::to_string(tg);
  } else {
    throw std::runtime_error(where + ": neither n_prompt nor n_gen is > 0");
  }
  if (depth > 0) e.test += " @ d" + std::to_string(depth);
  e.threads = static_cast<int>(number_or(o, "n_threads", 0));
  e.avg_ts = ts->number();
  e.stddev_ts = number_or(o, "stddev_ts", 0);
  return e;
}

// Key of entry i: test and threads, plus the ordinal of its model within its file (so two
// files with one model each match whatever the models are called).
std::map<std::string, const BenchEntry*> keyed(const std::vector<BenchEntry>& es) {
  std::map<std::string, int> model_index;
  std::map<std::string, const BenchEntry*> out;
  for (const BenchEntry& e : es) {
    const int m = model_index.emplace(e.model, static_cast<int>(model_index.size())).first->second;
    std::string k = "m";  // appended, not "m" + ...: GCC 12 -Wrestrict false positive (PR 105651)
    k.append(std::to_string(m)).append(" ").append(e.test).append(" t");
    k.append(std::to_string(e.threads));
    out.emplace(k, &e);  // first of duplicates
  }
  return out;
}

std::string fmt(const char* f, double a, double b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

std::vector<BenchEntry> parse_bench_results(const std::string& text, const std::string& path) {
  std::vector<BenchEntry> out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw std::runtime_error(path + ": empty file");
  try {
    if (text[first] == '[') {  // hpl bench -o json, llama-bench -o json
      const JsonValue v = grammar::parse_json_value(text);
      for (size_t i = 0; i < v.items.size(); ++i)
        out.push_back(entry(v.items[i], path + ": entry " + std::to_string(i)));
    } else {  // llama-bench -o jsonl
      std::istringstream in(text);
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        out.push_back(entry(grammar::parse_json_value(line), path + ": line " + std::to_string(n)));
      }
    }
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    throw std::runtime_error(msg.rfind(path, 0) == 0 ? msg : path + ": " + msg);
  }
  if (out.empty()) throw std::runtime_error(path + ": no results");
  return out;
}

std::string compare_bench(const std::vector<BenchEntry>& a, const std::vector<BenchEntry>& b,
                          const std::string& name_a, const std::string& name_b) {
  const auto ka = keyed(a), kb = keyed(b);
  std::string out = "A: " + name_a + "\nB: " + name_b + "\n\n";
  out += "| model A | model B | test | threads | A t/s | B t/s | B/A |\n";
  out += "| --- | --- | --- | ---: | ---: | ---: | ---: |\n";
  std::string only;
  for (const auto& [k, ea] : ka) {
    auto it = kb.find(k);
    if (it == kb.end()) {
      only +=
          "only in A: " + ea->model + " " + ea->test + " t" + std::to_string(ea->threads) + "\n";
      continue;
    }
    const BenchEntry* eb = it->second;
    const std::string ratio = ea->avg_ts > 0 ? fmt("%.3f", eb->avg_ts / ea->avg_ts, 0) : "-";
    out += "| " + ea->model + " | " + eb->model + " | " + ea->test + " | " +
           std::to_string(ea->threads) + " | " + fmt("%.2f ± %.2f", ea->avg_ts, ea->stddev_ts) +
           " | " + fmt("%.2f ± %.2f", eb->avg_ts, eb->stddev_ts) + " | " + ratio + " |\n";
  }
  for (const auto& [k, eb] : kb)
    if (!ka.count(k))
      only +=
          "only in B: " + eb->model + " " + eb->test + " t" + std::to_string(eb->threads) + "\n";
  return only.empty() ? out : out + "\n" + only;
}

}  // namespace hpl::cli
