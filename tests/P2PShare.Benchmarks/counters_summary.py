#!/usr/bin/env python3
"""Mean and max per counter of a `dotnet-counters collect --format csv` file (System.Runtime).

    counters_summary.py counters.csv
"""
import collections
import csv
import sys

WANTED = (
    "dotnet.process.cpu.time",
    "dotnet.exceptions",
    "dotnet.gc.collections",
    "dotnet.gc.pause.time",
    "dotnet.gc.heap.total_allocated",
    "dotnet.thread_pool.queue.length",
    "dotnet.thread_pool.thread.count",
    "dotnet.thread_pool.work_item.count",
    "dotnet.monitor.lock_contentions",
    "dotnet.timer.count",
    "dotnet.process.memory.working_set",
    "dotnet.jit.compiled_methods",
    "p2pshare.",
)


def main():
    values = collections.defaultdict(list)
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f):
            counter = row["Counter Name"]
            if counter.startswith(WANTED):
                try:
                    values[counter].append(float(row["Mean/Increment"]))
                except ValueError:
                    pass
    print("| counter | mean | max | seconds |")
    print("|---|---:|---:|---:|")
    for counter in sorted(values):
        v = values[counter]
        print("| %s | %.4g | %.4g | %d |" % (counter, sum(v) / len(v), max(v), len(v)))


if __name__ == "__main__":
    main()
