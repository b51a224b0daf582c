#!/usr/bin/env python3
"""Summarises `perf script` output (perf record -g of .NET processes) into where the CPU goes.

    perf script -F comm,pid,tid,ip,sym,dso -i perf.data | perf_top.py [--peers PID,PID,...] [--top N]

perf samples the CPU, not threads: every sample is a moment a thread was really running, in the
kernel, the runtime (libcoreclr: GC, type loads, stubs), the JIT, native helpers or managed code.
Managed JIT-compiled frames are named through /tmp/perf-PID.map (the peers run with
DOTNET_PerfMapEnabled=1 and DOTNET_EnableWriteXorExecute=0 so perf can find them); precompiled
(ReadyToRun) framework code and the stripped runtime stay unnamed and are reported by library.
"""
import argparse
import collections
import re
import sys

FRAME = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def layer(symbol, dso):
    if "kernel" in dso or dso.startswith("[") and dso != "[unknown]":
        return "kernel"
    base = dso.rsplit("/", 1)[-1]
    if base == "libcoreclr.so":
        return "runtime (libcoreclr: GC, stubs, type system)"
    if base == "libclrjit.so":
        return "JIT compiler"
    if base.startswith("libc.so") or base.startswith("ld-linux") or base.startswith("libstdc++") or base.startswith("libm.so"):
        return "libc"
    if base.startswith("libSystem.") or base.startswith("libclrgc"):
        return "native helpers (" + base + ")"
    if base.endswith(".dll"):
        return "precompiled managed (" + base + ")"
    if base.startswith("perf-") or "memfd:doublemapper" in dso or dso == "[unknown]" or base == "[anon]":
        return "JIT-compiled managed"
    return base


def name(symbol, dso):
    if symbol and symbol != "[unknown]":
        symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol)
        symbol = re.sub(r"\[(OptimizedTier1|Optimized|Tier0|Tier1|QuickJitted|PreJIT|Instrumented[^\]]*|OptimizedTier1OSR)\]$", "", symbol)
        # Drop argument lists and generic instantiations; keep Type.Method.
        symbol = re.sub(r"\(.*\)$", "", symbol)
        return symbol.strip()
    return "[%s]" % dso.rsplit("/", 1)[-1]


def samples(stream):
    header = None
    stack = []
    for line in stream:
        if not line.strip():
            if header is not None:
                yield header, stack
            header, stack = None, []
            continue
        if not line[0].isspace():
            header, stack = line.rstrip("\n"), []
            continue
        m = FRAME.match(line)
        if m:
            stack.append((m.group(2), m.group(3)))
    if header is not None:
        yield header, stack


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--peers", default="", help="the peers' PIDs: samples of other PIDs are their children (workers, sandbox launchers)")
    parser.add_argument("--only", choices=["peers", "children"], help="count only the peer processes, or only their children (needs --peers)")
    args = parser.parse_args()
    peers = {int(p) for p in args.peers.split(",") if p.strip()}

    total = 0
    layers = collections.Counter()
    exclusive = collections.Counter()
    inclusive = collections.Counter()
    ours = collections.Counter()
    threads = collections.Counter()
    processes = collections.Counter()
    for header, stack in samples(sys.stdin):
        if not stack:
            continue
        # "comm pid/tid": the thread's name may hold spaces, the PID/TID field is the last one.
        m = re.match(r"^\s*(.*?)\s+(\d+)(?:/(\d+))?\s*$", header)
        is_peer = bool(m) and int(m.group(2)) in peers
        if args.only and m and is_peer != (args.only == "peers"):
            continue
        total += 1
        leaf_symbol, leaf_dso = stack[0]
        layers[layer(leaf_symbol, leaf_dso)] += 1
        exclusive[name(leaf_symbol, leaf_dso)] += 1
        seen = set()
        for symbol, dso in stack:
            frame = name(symbol, dso)
            if frame not in seen and not frame.startswith("["):
                seen.add(frame)
                inclusive[frame] += 1
        mine = next((name(s, d) for s, d in stack if "P2PShare." in (s or "")), "(no P2PShare frame on the stack)")
        ours[mine] += 1
        thread = m.group(1) if m else header.strip()
        threads[re.sub(r"\d+$", "#", thread)] += 1
        if peers and m:
            processes["peer processes" if is_peer else "their children (workers, bwrap, prlimit, compiler)"] += 1

    if total == 0:
        print("no samples")
        return
    print("CPU samples: %d" % total)

    def table(title, counter, top):
        print("\n%s" % title)
        print("| share | samples | what |")
        print("|---:|---:|---|")
        for key, n in counter.most_common(top):
            print("| %5.1f%% | %d | `%s` |" % (100.0 * n / total, n, key.replace("|", "\\|")))

    if processes:
        table("by process", processes, 5)
    table("by layer (where the running instruction was)", layers, 12)
    table("by thread", threads, 10)
    table("top exclusive (the running function)", exclusive, args.top)
    table("top inclusive (managed and named frames anywhere on the stack)", inclusive, args.top)
    table("innermost P2PShare frame (our method the CPU was spent under)", ours, args.top)


if __name__ == "__main__":
    main()
