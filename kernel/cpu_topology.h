// Which CPUs there are, how fast each is, which ones a decode should use, and pinning threads to
// a set of them. Read from Linux / Android sysfs (a root directory that tests point at fake
// trees):
//   <root>/online                                CPUs that are up ("0-7")
//   <root>/cpuN/cpu_capacity                     relative speed (1024 = fastest), arm64 / hybrid
//   <root>/cpuN/cpufreq/cpuinfo_max_freq         kHz, used when no core has cpu_capacity
//   <root>/cpuN/topology/cluster_id, physical_package_id, thread_siblings_list
// Cores of equal speed form a tier; tiers are listed fastest first.
//
// Default threads for decode: one per physical core whose speed is at least half the fastest
// allowed core's (kDecodeTierFraction). Decode reads every weight once per token, so it is
// bound by memory bandwidth, which the big and mid cores of a phone already saturate; a core
// under half their speed (Cortex-A510/A520/A55 next to X- or A7xx cores) adds little bandwidth,
// and each chunk it runs finishes late. On equal cores this is every physical core (SMT
// siblings share a core's load/store units, so they add nothing to a bandwidth-bound decode).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hpl::kernel {

constexpr double kDecodeTierFraction = 0.5;

struct CpuCore {
  int cpu = 0;           // logical CPU number
  int64_t capacity = 0;  // cpu_capacity, 0 when absent
  int64_t max_khz = 0;   // cpufreq/cpuinfo_max_freq, 0 when absent
  int cluster = -1;      // cluster_id, else physical_package_id, else -1
  int core = 0;          // first CPU of thread_siblings_list: SMT siblings share it
  int64_t score = 0;     // the speed tiers are made from (capacity or max_khz; 0 = unknown)
};

struct CpuTier {
  std::vector<int> cpus;  // logical CPUs, ascending
  int64_t score = 0;      // speed of each core in the tier
  int physical = 0;       // physical cores (SMT siblings counted once)
};

struct CpuTopology {
  std::vector<CpuCore> cores;    // online CPUs, ascending
  std::vector<CpuTier> tiers;    // fastest first
  std::string score_source;      // "cpu_capacity", "cpuinfo_max_freq" or "none"
  std::vector<int> allowed;      // CPUs this process may run on (all online when unknown)
  std::vector<int> decode_cpus;  // one CPU per physical core that default_threads counts
  int default_threads = 1;       // decode_cpus.size(), at least 1
};

// Reads the topology under root. allowed: CPUs the threads may use (empty: this process's
// affinity when root is the real sysfs, else every online CPU); the default is computed over
// those only (an Android app in the background is confined to the little cores).
// A tree with files missing still gives the online CPUs (or hardware_concurrency() of them)
// as one tier.
CpuTopology read_cpu_topology(const std::string& root = "/sys/devices/system/cpu",
                              std::vector<int> allowed = {});

// The topology of this machine, read once.
const CpuTopology& host_cpu_topology();
// Threads to use when none are asked for: host_cpu_topology().default_threads, or with cpus
// (a pin mask) the same rule applied to those CPUs.
int default_thread_count(const std::vector<int>& cpus = {});

// "0-3,6" -> {0,1,2,3,6}; sorted, unique. Throws std::invalid_argument naming the bad part.
std::vector<int> parse_cpu_list(const std::string& s);
// "0xf0" / "f0" (hex bit mask, bit i = CPU i) -> {4,5,6,7}. Throws std::invalid_argument.
std::vector<int> parse_cpu_mask(const std::string& s);
// {0,1,2,3,6} -> "0-3,6"; {} -> "".
std::string format_cpu_list(const std::vector<int>& cpus);

// CPUs the calling thread may run on (empty when the OS cannot tell).
std::vector<int> current_thread_affinity();
// Pins the calling thread to cpus. Returns "" when the OS applied exactly that mask, else why
// not, naming the CPUs asked for and the ones the thread got.
std::string pin_current_thread(const std::vector<int>& cpus);

// Several lines describing the topology (for `hpl info --cpu` and --verbose).
std::string describe_cpu_topology(const CpuTopology& t);

}  // namespace hpl::kernel
