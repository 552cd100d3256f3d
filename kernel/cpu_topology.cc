// CPU topology from sysfs, CPU lists and masks, thread pinning. See cpu_topology.h.
#include "kernel/cpu_topology.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace hpl::kernel {
namespace {

constexpr int kMaxCpu = 1023;  // CPU_SETSIZE - 1

// First line of a small text file, trimmed; "" when it cannot be read.
std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!in || !std::getline(in, s)) return "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

int64_t read_int(const std::string& path, int64_t fallback) {
  const std::string s = read_line(path);
  if (s.empty()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  return *end == '\0' ? v : fallback;
}

std::vector<int> read_list(const std::string& path) {
  const std::string s = read_line(path);
  if (s.empty()) return {};
  try {
    return parse_cpu_list(s);
  } catch (const std::invalid_argument&) {
    return {};
  }
}

int parse_cpu_number(const std::string& s, const std::string& whole) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0 || v > kMaxCpu) {
    throw std::invalid_argument("CPU list '" + whole + "': bad CPU number '" + s + "' (want 0.." +
                                std::to_string(kMaxCpu) + ")");
  }
  return static_cast<int>(v);
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& s) {
  std::set<int> cpus;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) throw std::invalid_argument("CPU list '" + s + "': empty item");
    const size_t dash = part.find('-');
    if (dash == std::string::npos) {
      cpus.insert(parse_cpu_number(part, s));
      continue;
    }
    const int a = parse_cpu_number(part.substr(0, dash), s);
    const int b = parse_cpu_number(part.substr(dash + 1), s);
    if (a > b)
      throw std::invalid_argument("CPU list '" + s + "': range '" + part + "' is reversed");
    for (int c = a; c <= b; ++c) cpus.insert(c);
  }
  if (cpus.empty()) throw std::invalid_argument("CPU list '" + s + "' is empty");
  return {cpus.begin(), cpus.end()};
}

std::vector<int> parse_cpu_mask(const std::string& s) {
  std::string h = s;
  if (h.size() > 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) h = h.substr(2);
  std::vector<int> cpus;
  const int n = static_cast<int>(h.size());
  if (n == 0 || n * 4 > kMaxCpu + 1)
    throw std::invalid_argument("CPU mask '" + s + "': want 1 to 256 hex digits");
  for (int i = 0; i < n; ++i) {  // digit i from the right holds CPUs 4i .. 4i+3
    const char c = h[n - 1 - i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      throw std::invalid_argument("CPU mask '" + s + "': '" + std::string(1, c) +
                                  "' is not a hex digit");
    }
    for (int b = 0; b < 4; ++b)
      if (v >> b & 1) cpus.push_back(4 * i + b);
  }
  if (cpus.empty()) throw std::invalid_argument("CPU mask '" + s + "' selects no CPU");
  std::sort(cpus.begin(), cpus.end());
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> current_thread_affinity() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {};
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
#else
  return {};
#endif
}

std::string pin_current_thread(const std::vector<int>& cpus_in) {
  std::vector<int> cpus = cpus_in;
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  const std::string want = format_cpu_list(cpus);
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) return "cannot pin to CPUs " + want + ": CPU out of range";
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    const int err = errno;
    return "the OS refused pinning to CPUs " + want + " (" + std::strerror(err) +
           "); running on CPUs " + format_cpu_list(current_thread_affinity());
  }
  const std::vector<int> got = current_thread_affinity();
  if (got != cpus) {
    return "asked for CPUs " + want + ", the OS allows CPUs " + format_cpu_list(got) +
           " (e.g. an Android cpuset)";
  }
  return "";
#else
  return "cannot pin to CPUs " + want + ": thread pinning is not supported on this OS";
#endif
}

CpuTopology read_cpu_topology(const std::string& root, std::vector<int> allowed) {
  CpuTopology t;
  std::vector<int> online = read_list(root + "/online");
  if (online.empty()) {  // no online file: the cpuN folders, else hardware_concurrency()
    for (int c = 0; c <= kMaxCpu; ++c) {
      std::ifstream probe(root + "/cpu" + std::to_string(c) + "/topology/core_id");
      if (probe) online.push_back(c);
    }
  }
  if (online.empty()) {
    const int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int c = 0; c < n; ++c) online.push_back(c);
  }
  bool all_capacity = true, all_freq = true;
  for (int c : online) {
    const std::string dir = root + "/cpu" + std::to_string(c);
    CpuCore k;
    k.cpu = c;
    k.capacity = std::max<int64_t>(0, read_int(dir + "/cpu_capacity", 0));
    k.max_khz = std::max<int64_t>(0, read_int(dir + "/cpufreq/cpuinfo_max_freq", 0));
    k.cluster = static_cast<int>(read_int(dir + "/topology/cluster_id", -1));
    if (k.cluster < 0)
      k.cluster = static_cast<int>(read_int(dir + "/topology/physical_package_id", -1));
    const std::vector<int> sib = read_list(dir + "/topology/thread_siblings_list");
    k.core = sib.empty() ? c : sib.front();
    all_capacity &= k.capacity > 0;
    all_freq &= k.max_khz > 0;
    t.cores.push_back(k);
  }
  t.score_source = all_capacity ? "cpu_capacity" : all_freq ? "cpuinfo_max_freq" : "none";
  for (CpuCore& k : t.cores) k.score = all_capacity ? k.capacity : all_freq ? k.max_khz : 0;

  // Tiers: cores of equal score, fastest first.
  std::map<int64_t, CpuTier, std::greater<>> by_score;
  for (const CpuCore& k : t.cores) by_score[k.score].cpus.push_back(k.cpu);
  for (auto& [score, tier] : by_score) {
    tier.score = score;
    std::set<int> phys;
    for (int c : tier.cpus)
      for (const CpuCore& k : t.cores)
        if (k.cpu == c) phys.insert(k.core);
    tier.physical = static_cast<int>(phys.size());
    t.tiers.push_back(tier);
  }

  // The CPUs we may use: the given set, else this process's (real sysfs only), else all.
  if (allowed.empty() && root == "/sys/devices/system/cpu") allowed = current_thread_affinity();
  std::vector<int> usable;
  for (int c : online)
    if (allowed.empty() || std::binary_search(allowed.begin(), allowed.end(), c))
      usable.push_back(c);
  if (usable.empty()) usable = online;  // affinity names no online CPU: ignore it
  t.allowed = usable;

  // Default: one CPU per physical core at >= kDecodeTierFraction of the fastest usable one.
  int64_t best = 0;
  for (const CpuCore& k : t.cores)
    if (std::binary_search(usable.begin(), usable.end(), k.cpu)) best = std::max(best, k.score);
  std::set<int> seen_core;
  for (const CpuCore& k : t.cores) {
    if (!std::binary_search(usable.begin(), usable.end(), k.cpu)) continue;
    if (static_cast<double>(k.score) < kDecodeTierFraction * static_cast<double>(best)) continue;
    if (seen_core.insert(k.core).second) t.decode_cpus.push_back(k.cpu);
  }
  t.default_threads = std::max(1, static_cast<int>(t.decode_cpus.size()));
  return t;
}

const CpuTopology& host_cpu_topology() {
  static const CpuTopology t = read_cpu_topology();
  return t;
}

int default_thread_count(const std::vector<int>& cpus) {
  if (cpus.empty()) return host_cpu_topology().default_threads;
  return read_cpu_topology("/sys/devices/system/cpu", cpus).default_threads;
}

std::string describe_cpu_topology(const CpuTopology& t) {
  std::ostringstream o;
  o << "CPUs online: " << format_cpu_list([&] {
    std::vector<int> v;
    for (const CpuCore& k : t.cores) v.push_back(k.cpu);
    return v;
  }())
    << " (" << t.cores.size() << "), usable by this process: " << format_cpu_list(t.allowed)
    << "\n";
  o << "speed from: " << t.score_source << "\n";
  for (size_t i = 0; i < t.tiers.size(); ++i) {
    const CpuTier& tier = t.tiers[i];
    std::set<int> clusters;
    for (int c : tier.cpus)
      for (const CpuCore& k : t.cores)
        if (k.cpu == c && k.cluster >= 0) clusters.insert(k.cluster);
    o << "tier " << i << ": CPUs " << format_cpu_list(tier.cpus) << ", " << tier.physical
      << " physical core" << (tier.physical == 1 ? "" : "s");
    if (t.score_source == "cpu_capacity") o << ", capacity " << tier.score;
    if (t.score_source == "cpuinfo_max_freq") o << ", " << tier.score / 1000 << " MHz";
    if (!clusters.empty()) {
      o << ", cluster";
      for (int c : clusters) o << ' ' << c;
    }
    o << "\n";
  }
  o << "default threads: " << t.default_threads << " (CPUs " << format_cpu_list(t.decode_cpus)
    << ": one per physical core at >= " << static_cast<int>(kDecodeTierFraction * 100)
    << "% of the fastest usable core's speed)\n";
  return o.str();
}

}  // namespace hpl::kernel
