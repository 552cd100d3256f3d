// CPU topology on fake sysfs trees shaped like real phones and desktops (tests/data/cpu, made
// by make_trees.py): tiers, default thread counts, the allowed-CPU restriction; CPU list and
// mask parsing; pinning: every pool thread's affinity equals the mask, refusals are reported.
#include "kernel/cpu_topology.h"

#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernel/thread_pool.h"

namespace hpl::kernel {
namespace {

const std::string kTrees = std::string(HPL_TEST_DATA_DIR) + "/cpu/";

std::vector<std::vector<int>> tier_cpus(const CpuTopology& t) {
  std::vector<std::vector<int>> v;
  for (const CpuTier& tier : t.tiers) v.push_back(tier.cpus);
  return v;
}

using V = std::vector<int>;
using VV = std::vector<std::vector<int>>;

TEST(CpuTopology, Snapdragon8Gen3) {  // 1 + 3 + 2 + 2
  const CpuTopology t = read_cpu_topology(kTrees + "sd8gen3", V{0, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(t.score_source, "cpu_capacity");
  EXPECT_EQ(tier_cpus(t), (VV{{7}, {2, 3, 4}, {5, 6}, {0, 1}}));
  EXPECT_EQ(t.tiers[0].score, 1024);
  EXPECT_EQ(t.cores[7].cluster, 3);
  EXPECT_EQ(t.default_threads, 6);  // X4 + five A720; not the A520s (325 < 512)
  EXPECT_EQ(t.decode_cpus, (V{2, 3, 4, 5, 6, 7}));
}

TEST(CpuTopology, Snapdragon8Gen3InABackgroundCpuset) {
  // Confined to CPUs 0-3 (Android's background cpuset): the fastest usable cores are two A720s.
  const CpuTopology t = read_cpu_topology(kTrees + "sd8gen3", V{0, 1, 2, 3});
  EXPECT_EQ(t.allowed, (V{0, 1, 2, 3}));
  EXPECT_EQ(t.default_threads, 2);
  EXPECT_EQ(t.decode_cpus, (V{2, 3}));
}

TEST(CpuTopology, TensorG3) {  // 1 + 4 + 4
  const CpuTopology t = read_cpu_topology(kTrees + "tensor_g3", V{0, 1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(tier_cpus(t), (VV{{8}, {4, 5, 6, 7}, {0, 1, 2, 3}}));
  EXPECT_EQ(t.default_threads, 5);
  EXPECT_EQ(t.decode_cpus, (V{4, 5, 6, 7, 8}));
}

TEST(CpuTopology, Dimensity9300AllBig) {  // 4 + 4, A720 at 58% of X4: all eight
  const CpuTopology t = read_cpu_topology(kTrees + "dim9300", V{0, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(tier_cpus(t), (VV{{4, 5, 6, 7}, {0, 1, 2, 3}}));
  EXPECT_EQ(t.default_threads, 8);
}

TEST(CpuTopology, A55BudgetPhoneFallsBackToMaxFreq) {
  const CpuTopology t = read_cpu_topology(kTrees + "a55_budget", V{0, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(t.score_source, "cpuinfo_max_freq");
  EXPECT_EQ(tier_cpus(t), (VV{{4, 5, 6, 7}, {0, 1, 2, 3}}));
  EXPECT_EQ(t.tiers[0].score, 1600000);
  EXPECT_EQ(t.default_threads, 8);  // 1.2 GHz is 75% of 1.6 GHz
}

TEST(CpuTopology, RaspberryPi5) {
  const CpuTopology t = read_cpu_topology(kTrees + "pi5", V{0, 1, 2, 3});
  EXPECT_EQ(tier_cpus(t), (VV{{0, 1, 2, 3}}));
  EXPECT_EQ(t.tiers[0].physical, 4);
  EXPECT_EQ(t.default_threads, 4);
}

TEST(CpuTopology, DesktopWithSmtUsesPhysicalCores) {
  V all;
  for (int c = 0; c < 16; ++c) all.push_back(c);
  const CpuTopology t = read_cpu_topology(kTrees + "desktop_smt", all);
  ASSERT_EQ(t.tiers.size(), 1u);
  EXPECT_EQ(t.tiers[0].cpus.size(), 16u);
  EXPECT_EQ(t.tiers[0].physical, 8);
  EXPECT_EQ(t.default_threads, 8);
  EXPECT_EQ(t.decode_cpus, (V{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.cores[9].core, 1);  // cpu9 is cpu1's sibling
}

TEST(CpuTopology, MissingFilesGiveOneTierOfOnlineCpus) {
  const CpuTopology t = read_cpu_topology(kTrees + "missing", V{});
  EXPECT_EQ(t.score_source, "none");
  EXPECT_EQ(tier_cpus(t), (VV{{0, 1, 2, 3, 4, 5}}));
  EXPECT_EQ(t.default_threads, 6);
  EXPECT_EQ(t.allowed, (V{0, 1, 2, 3, 4, 5}));
}

TEST(CpuTopology, NoTreeAtAllStillGivesAThreadCount) {
  const CpuTopology t = read_cpu_topology(kTrees + "does-not-exist", V{});
  EXPECT_GE(t.default_threads, 1);
  EXPECT_EQ(t.tiers.size(), 1u);
}

TEST(CpuTopology, AllowedSetNamingNoOnlineCpuIsIgnored) {
  const CpuTopology t = read_cpu_topology(kTrees + "pi5", V{12, 13});
  EXPECT_EQ(t.default_threads, 4);
}

TEST(CpuTopology, HostAndDescription) {
  const CpuTopology& t = host_cpu_topology();
  EXPECT_GE(t.default_threads, 1);
  EXPECT_FALSE(t.cores.empty());
  const std::string d = describe_cpu_topology(read_cpu_topology(kTrees + "sd8gen3", V{}));
  EXPECT_NE(d.find("tier 0: CPUs 7, 1 physical core, capacity 1024, cluster 3"), std::string::npos)
      << d;
  EXPECT_NE(d.find("default threads: 6 (CPUs 2-7"), std::string::npos) << d;
}

TEST(CpuList, ParseAndFormat) {
  EXPECT_EQ(parse_cpu_list("4-7"), (V{4, 5, 6, 7}));
  EXPECT_EQ(parse_cpu_list("0,2-3,9"), (V{0, 2, 3, 9}));
  EXPECT_EQ(parse_cpu_list("3,1,3"), (V{1, 3}));
  EXPECT_EQ(format_cpu_list(V{0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
  EXPECT_EQ(format_cpu_list(V{}), "");
  for (const char* bad : {"", "a", "1-", "-1", "3-1", "1,,2", "1024", "0-99999"})
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << bad;
}

TEST(CpuMask, Parse) {
  EXPECT_EQ(parse_cpu_mask("0xf0"), (V{4, 5, 6, 7}));
  EXPECT_EQ(parse_cpu_mask("F0"), (V{4, 5, 6, 7}));
  EXPECT_EQ(parse_cpu_mask("0x101"), (V{0, 8}));
  for (const char* bad : {"", "0x", "0x0", "xyz", "0xg1"})
    EXPECT_THROW(parse_cpu_mask(bad), std::invalid_argument) << bad;
}

#if defined(__linux__)
class Pinning : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = current_thread_affinity(); }
  void TearDown() override { pin_current_thread(saved_); }  // run() pinned this thread too
  std::vector<int> saved_;
};

TEST_F(Pinning, WorkerAffinityEqualsTheMask) {
  const std::vector<int> online = current_thread_affinity();
  ASSERT_FALSE(online.empty());
  const std::vector<int> mask = {online.back()};  // one CPU we may use
  ThreadPool pool(3, ThreadPool::kDefaultSpinUs, mask);
  EXPECT_EQ(pool.pin_warning(), "");
  // Chunks that sleep, so every thread takes some; each records its thread's affinity.
  std::mutex m;
  std::map<long, std::vector<int>> seen;  // thread id -> affinity
  pool.for_chunks(30, [&](int64_t, int) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::vector<int> a = current_thread_affinity();
    std::lock_guard<std::mutex> lk(m);
    seen[static_cast<long>(syscall(SYS_gettid))] = a;
  });
  EXPECT_EQ(seen.size(), 3u);  // the caller and both workers ran chunks
  for (const auto& [tid, a] : seen) EXPECT_EQ(a, mask) << "thread " << tid;
  EXPECT_EQ(current_thread_affinity(), mask);  // run() pinned the caller too
}

TEST_F(Pinning, RefusedMaskIsReportedNamingTheCpus) {
  ThreadPool pool(2, ThreadPool::kDefaultSpinUs, {1000});  // no such CPU here
  const std::string w = pool.pin_warning();
  EXPECT_NE(w.find("1000"), std::string::npos) << w;
  std::vector<int> sum(2, 0);
  pool.run([&](int i, int) { sum[i] = 1; });  // the pool still works
  EXPECT_EQ(sum, (V{1, 1}));
}

TEST_F(Pinning, NarrowedMaskIsReported) {
  const std::vector<int> online = current_thread_affinity();
  std::vector<int> mask = online;
  mask.push_back(900);  // the OS drops CPUs it does not have
  EXPECT_NE(pin_current_thread(mask).find("900"), std::string::npos);
}
#endif

}  // namespace
}  // namespace hpl::kernel
