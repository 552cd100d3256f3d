// The one option parser of every hpl command: a command declares each option once (its
// spellings, value name, help line and what to do with the value) and its usage text is
// printed from that table, so the two never disagree.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace hpl::cli {

// A bad command line (unknown option, missing value, missing required option): hpl prints
// the message and exits with 2, after the command's usage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int64_t to_int(const std::string& opt, const std::string& v);
float to_float(const std::string& opt, const std::string& v);

class Options {
 public:
  // opt: the spelling the user typed (errors name it); v: the value.
  using OnValue = std::function<void(const std::string& opt, const std::string& v)>;

  // head: the usage line(s), e.g. "usage: hpl run -m MODEL.gguf (-p PROMPT | -f FILE) [options]".
  explicit Options(std::string head) : head_(std::move(head)) {}

  // An option without a value.
  Options& flag(std::initializer_list<const char*> names, const char* help,
                std::function<void()> on);
  Options& flag(std::initializer_list<const char*> names, const char* help, bool& out,
                bool value = true) {
    return flag(names, help, [&out, value] { out = value; });
  }
  // An option with a value, handed to on (which throws std::runtime_error on a bad one).
  Options& value(std::initializer_list<const char*> names, const char* metavar, const char* help,
                 OnValue on);
  Options& text(std::initializer_list<const char*> names, const char* metavar, const char* help,
                std::string& out) {
    return value(names, metavar, help,
                 [&out](const std::string&, const std::string& v) { out = v; });
  }
  // An integer or float option; integers must fit T ("-c: out of range: '9e99'").
  template <class T>
  Options& number(std::initializer_list<const char*> names, const char* metavar, const char* help,
                  T& out) {
    return value(names, metavar, help, [&out](const std::string& opt, const std::string& v) {
      if constexpr (std::is_integral_v<T>) {
        const int64_t x = to_int(opt, v);
        if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
            static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          throw std::runtime_error(opt + ": out of range: '" + v + "'");
        out = static_cast<T>(x);
      } else {
        out = static_cast<T>(to_float(opt, v));
      }
    });
  }
  // Arguments that are not options, in order (a lone "-" counts as one). Without this, any
  // is a usage error.
  Options& positional(std::vector<std::string>& out) {
    positional_ = &out;
    return *this;
  }
  // A line of its own in the usage text, after the options added so far.
  Options& note(const char* text);
  // help == nullptr marks an option for tests only: parsed, not listed.
  static constexpr const char* kHidden = nullptr;

  // Parses args (argv after the command name). false: -h/--help printed the usage to stdout
  // and the command should exit 0. Throws UsageError or the handlers' errors.
  bool parse(const std::vector<std::string>& args) const;
  // The usage text, as -h prints it.
  std::string usage() const;
  // Prints the usage to stderr and throws UsageError(msg).
  [[noreturn]] void fail(const std::string& msg) const;

 private:
  struct Spec {
    std::vector<std::string> names;
    const char* metavar;  // null: a flag
    const char* help;     // null: hidden
    OnValue on;
    std::string note;  // non-empty: a free line, not an option
  };
  const Spec* find(const std::string& name) const;

  std::string head_;
  std::vector<Spec> specs_;
  std::vector<std::string>* positional_ = nullptr;
};

}  // namespace hpl::cli
