// cli/options.h: the one option parser of every hpl command, and the option sets the
// commands share (sampler, threads).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/options.h"

namespace hpl::cli {
namespace {

using Args = std::vector<std::string>;

std::string error_of(const Options& o, const Args& args) {
  try {
    o.parse(args);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(CliOptions, ParsesFlagsValuesNumbersAndPositionals) {
  bool verbose = false, warmup = true;
  std::string model;
  int64_t ctx = 0;
  int32_t small = 0;
  float temp = 0;
  std::vector<std::string> stops, pos;
  Options o("usage: test");
  o.flag({"-v", "--verbose"}, "say more", verbose)
      .flag({"--no-warmup"}, "skip it", warmup, false)
      .text({"-m", "--model"}, "MODEL", "the model", model)
      .number({"-c"}, "N", "context", ctx)
      .number({"--small"}, "N", "an int32", small)
      .number({"--temp"}, "T", "a float", temp)
      .value({"--stop"}, "TEXT", "repeatable",
             [&](auto&, const std::string& v) { stops.push_back(v); })
      .positional(pos);
  EXPECT_TRUE(o.parse({"in.gguf", "--verbose", "-m", "a.gguf", "-c", "4096", "--temp", "0.5",
                       "--stop", "x", "--stop", "-y", "--no-warmup", "-", "out"}));
  EXPECT_TRUE(verbose);
  EXPECT_FALSE(warmup);
  EXPECT_EQ(model, "a.gguf");
  EXPECT_EQ(ctx, 4096);
  EXPECT_FLOAT_EQ(temp, 0.5f);
  EXPECT_EQ(stops, (Args{"x", "-y"}));  // a value may start with '-'
  EXPECT_EQ(pos, (Args{"in.gguf", "-", "out"}));

  EXPECT_EQ(error_of(o, {"-c", "12x"}), "-c: not an integer: '12x'");
  EXPECT_EQ(error_of(o, {"--small", "3000000000"}), "--small: out of range: '3000000000'");
  EXPECT_EQ(error_of(o, {"-c", "99999999999999999999"}),
            "-c: out of range: '99999999999999999999'");
  EXPECT_EQ(error_of(o, {"--temp", ""}), "--temp: not a number: ''");
}

TEST(CliOptions, BadCommandLinesAreUsageErrors) {
  std::string model;
  Options o("usage: test");
  o.text({"-m"}, "MODEL", "the model", model);
  EXPECT_THROW(o.parse({"--bogus"}), UsageError);
  EXPECT_EQ(error_of(o, {"--bogus"}), "unknown option '--bogus'");
  EXPECT_EQ(error_of(o, {"-m"}), "-m needs a value");
  EXPECT_EQ(error_of(o, {"stray"}), "unexpected argument 'stray'");  // no positionals declared
  EXPECT_THROW(o.fail("-m MODEL is required"), UsageError);
}

TEST(CliOptions, HelpStopsParsingAndUsageComesFromTheTable) {
  bool seen = false;
  std::string hidden;
  Options o("usage: test -x");
  o.flag({"-x", "--ex"}, "line one\nline two", seen)
      .text({"--secret"}, "FILE", Options::kHidden, hidden)
      .note("a note");
  EXPECT_FALSE(o.parse({"--help", "-x"}));
  EXPECT_FALSE(seen);  // nothing after --help is applied
  const std::string u = o.usage();
  EXPECT_EQ(u.rfind("usage: test -x\n", 0), 0u);
  EXPECT_NE(u.find("  -x, --ex             line one\n                       line two\n"),
            std::string::npos)
      << u;
  EXPECT_EQ(u.find("--secret"), std::string::npos);
  EXPECT_NE(u.find("a note\n"), std::string::npos);
  EXPECT_TRUE(o.parse({"--secret", "f"}));
  EXPECT_EQ(hidden, "f");
}

TEST(CliOptions, SamplerOptionsAreCheckedWithTheCApiRanges) {
  SamplerParams sp;
  bool have_seed = false;
  Options o("usage: test");
  add_sampler_options(o, sp, have_seed);
  EXPECT_TRUE(o.parse({"--temp", "0.2", "--top-k", "7", "--seed", "42"}));
  EXPECT_FLOAT_EQ(sp.temp, 0.2f);
  EXPECT_EQ(sp.top_k, 7);
  EXPECT_EQ(sp.seed, 42u);
  EXPECT_TRUE(have_seed);
  const std::string e = error_of(o, {"--temp", "-1"});
  EXPECT_EQ(e.rfind("--temp: ", 0), 0u) << e;
  EXPECT_NE(e.find("[0, 2]"), std::string::npos) << e;
}

TEST(CliOptions, ThreadOptionsCheckTheirRangeAndCpuLists) {
  ThreadOptions th;
  Options o("usage: test");
  th.add_to(o);
  EXPECT_TRUE(o.parse({"-t", "3", "--cpus", "0,2-3"}));
  EXPECT_EQ(th.threads(), 3);
  EXPECT_EQ(th.cpus, (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(error_of(o, {"-t", "0"}), "-t: must be in [1, 256]");
  EXPECT_EQ(error_of(o, {"--threads", "257"}), "--threads: must be in [1, 256]");
  EXPECT_NE(error_of(o, {"--cpu-mask", "zz"}).find("--cpu-mask: "), std::string::npos);
}

}  // namespace
}  // namespace hpl::cli
