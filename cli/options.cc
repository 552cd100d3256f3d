#include "cli/options.h"

#include <cerrno>
#include <cstdlib>

namespace hpl::cli {

int64_t to_int(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0') throw std::runtime_error(opt + ": not an integer: '" + v + "'");
  if (errno == ERANGE) throw std::runtime_error(opt + ": out of range: '" + v + "'");
  return x;
}

float to_float(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  const float x = std::strtof(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw std::runtime_error(opt + ": not a number: '" + v + "'");
  return x;
}

Options& Options::flag(std::initializer_list<const char*> names, const char* help,
                       std::function<void()> on) {
  specs_.push_back({{names.begin(), names.end()},
                    nullptr,
                    help,
                    [on = std::move(on)](const std::string&, const std::string&) { on(); },
                    {}});
  return *this;
}

Options& Options::value(std::initializer_list<const char*> names, const char* metavar,
                        const char* help, OnValue on) {
  specs_.push_back({{names.begin(), names.end()}, metavar, help, std::move(on), {}});
  return *this;
}

Options& Options::note(const char* text) {
  specs_.push_back({{}, nullptr, nullptr, {}, text});
  return *this;
}

const Options::Spec* Options::find(const std::string& name) const {
  for (const Spec& s : specs_)
    for (const std::string& n : s.names)
      if (n == name) return &s;
  return nullptr;
}

bool Options::parse(const std::vector<std::string>& args) const {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    if (a.size() < 2 || a[0] != '-') {
      if (!positional_) fail("unexpected argument '" + a + "'");
      positional_->push_back(a);
      continue;
    }
    const Spec* s = find(a);
    if (!s) fail("unknown option '" + a + "'");
    if (s->metavar && i + 1 >= args.size()) fail(a + " needs a value");
    s->on(a, s->metavar ? args[++i] : std::string());
  }
  return true;
}

std::string Options::usage() const {
  constexpr size_t kHelpColumn = 23;
  std::string out = head_;
  out += '\n';
  for (const Spec& s : specs_) {
    if (!s.note.empty()) {
      out.append(s.note).append("\n");
      continue;
    }
    if (!s.help) continue;
    std::string left = "  ";
    for (size_t k = 0; k < s.names.size(); ++k) left.append(k ? ", " : "").append(s.names[k]);
    if (s.metavar) left.append(" ").append(s.metavar);
    if (left.size() + 1 > kHelpColumn) {
      left += '\n';
      left.append(kHelpColumn, ' ');
    } else {
      left.append(kHelpColumn - left.size(), ' ');
    }
    out += left;
    // Continuation lines of a multi-line help line up under its first.
    for (const char* p = s.help; *p; ++p) {
      out += *p;
      if (*p == '\n' && p[1]) out.append(kHelpColumn, ' ');
    }
    out += '\n';
  }
  return out;
}

void Options::fail(const std::string& msg) const {
  std::fputs(usage().c_str(), stderr);
  throw UsageError(msg);
}

}  // namespace hpl::cli
