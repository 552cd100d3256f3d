#!/usr/bin/env python3
"""Writes the fake /sys/devices/system/cpu trees that tests/cpu_topology_test.cc reads.

Shaped like real devices (core counts, clusters, relative speeds; capacities approximate):
  sd8gen3      Snapdragon 8 Gen 3: 2x A520 + 2x A720 @2.96 + 3x A720 @3.15 + 1x X4
  tensor_g3    Google Tensor G3: 4x A510 + 4x A715 + 1x X3
  dim9300      Dimensity 9300: 4x A720 + 4x X4 ("all big")
  a55_budget   Cortex-A55-only budget phone (SC9863A-like), older kernel: no cpu_capacity
  pi5          Raspberry Pi 5: 4x A76
  desktop_smt  desktop, 8 equal cores with 2-way SMT (siblings cpuN and cpuN+8), no cpu_capacity
  missing      only the online file; the per-CPU folders are empty
Run from this folder: python3 make_trees.py
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def tree(name, cores, online=None, siblings=None):
    """cores: list of (capacity or None, max_khz or None, cluster)."""
    root = os.path.join(HERE, name)
    shutil.rmtree(root, ignore_errors=True)
    n = len(cores)
    write(os.path.join(root, "online"), online or f"0-{n - 1}")
    for i, (cap, khz, cluster) in enumerate(cores):
        d = os.path.join(root, f"cpu{i}")
        if cap is not None:
            write(os.path.join(d, "cpu_capacity"), str(cap))
        if khz is not None:
            write(os.path.join(d, "cpufreq", "cpuinfo_max_freq"), str(khz))
        write(os.path.join(d, "topology", "cluster_id"), str(cluster))
        write(os.path.join(d, "topology", "physical_package_id"), "0")
        write(os.path.join(d, "topology", "core_id"), str(i % (n // 2) if siblings else i))
        write(os.path.join(d, "topology", "thread_siblings_list"),
              siblings(i) if siblings else str(i))


tree("sd8gen3", [(325, 2265600, 0)] * 2 + [(870, 3148800, 1)] * 3 + [(830, 2956800, 2)] * 2
     + [(1024, 3302400, 3)])
tree("tensor_g3", [(256, 1704000, 0)] * 4 + [(636, 2367000, 1)] * 4 + [(1024, 2910000, 2)])
tree("dim9300", [(590, 2000000, 0)] * 4 + [(1024, 3250000, 1)] * 4)
tree("a55_budget", [(None, 1200000, 0)] * 4 + [(None, 1600000, 1)] * 4)
tree("pi5", [(1024, 2400000, 0)] * 4)
tree("desktop_smt", [(None, 4700000, 0)] * 16,
     siblings=lambda i: f"{i % 8},{i % 8 + 8}")
root = os.path.join(HERE, "missing")
shutil.rmtree(root, ignore_errors=True)
write(os.path.join(root, "online"), "0-5")
for i in range(6):
    os.makedirs(os.path.join(root, f"cpu{i}"), exist_ok=True)
    write(os.path.join(root, f"cpu{i}", "uevent"), "")  # git keeps no empty folders
