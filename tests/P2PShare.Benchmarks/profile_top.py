#!/usr/bin/env python3
"""Summarises a dotnet-trace Speedscope file of the dotnet-sampled-thread-time profile.

That profile samples every managed thread (~100 Hz) whether it runs or waits; the converter ends
each stack with a pseudo-frame: CPU_TIME (the thread was running managed code) or
UNMANAGED_CODE_TIME (in native code: waiting in the kernel, but also GC and JIT work). Only the
CPU_TIME samples count here, so blocked threads do not drown the picture; native CPU is reported
as one line beside it (it cannot be told apart from waiting in this profile).

    profile_top.py TRACE.speedscope.json [--top N]

Prints the top frames by exclusive time (the frame that was running), by inclusive time (a frame
anywhere on the stack, counted once per sample), and by the innermost P2PShare frame (which of our
methods the time was spent under, Orleans and runtime frames above it included).
"""
import argparse
import collections
import json
import re

CPU = "CPU_TIME"
NATIVE = "UNMANAGED_CODE_TIME"


def short(name):
    # "Module!Namespace.Type+<Method>d__12[...].MoveNext(args)" -> "Module!Namespace.Type+<Method>d__12.MoveNext"
    name = re.sub(r"\(.*\)$", "", name)
    name = re.sub(r"\[[^\[\]]*(\[[^\[\]]*\])*[^\[\]]*\]", "", name)
    return name


def weights(profile, frames):
    """(stack, seconds) for every interval in an evented profile."""
    stack = []
    last = None
    scale = {"milliseconds": 1e-3, "microseconds": 1e-6, "nanoseconds": 1e-9, "seconds": 1}.get(profile.get("unit"), 1e-3)
    for event in profile["events"]:
        at = event["at"]
        if last is not None and stack and at > last:
            yield tuple(stack), (at - last) * scale
        last = at
        if event["type"] == "O":
            stack.append(frames[event["frame"]])
        else:
            # Close events match the innermost open frame.
            if stack:
                stack.pop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.trace) as f:
        data = json.load(f)
    frames = [short(f["name"]) for f in data["shared"]["frames"]]

    exclusive = collections.Counter()
    inclusive = collections.Counter()
    ours = collections.Counter()
    cpu = native = 0.0
    for profile in data["profiles"]:
        if profile.get("type") != "evented":
            continue
        for stack, seconds in weights(profile, frames):
            leaf = stack[-1]
            if leaf == NATIVE:
                native += seconds
                continue
            if leaf != CPU:
                continue
            cpu += seconds
            running = stack[-2] if len(stack) > 1 else "?"
            exclusive[running] += seconds
            for frame in set(stack[:-1]):
                if "!" in frame:
                    inclusive[frame] += seconds
            mine = next((fr for fr in reversed(stack) if fr.startswith("P2PShare")), "(no P2PShare frame)")
            ours[mine] += seconds

    if cpu == 0:
        print("no CPU_TIME samples in %s" % args.trace)
        return
    print("managed CPU samples: %.2f s; native or waiting (UNMANAGED_CODE_TIME): %.2f s" % (cpu, native))

    def table(title, counter):
        print("\n%s" % title)
        print("| share | seconds | frame |")
        print("|---:|---:|---|")
        for frame, seconds in counter.most_common(args.top):
            print("| %5.1f%% | %.2f | `%s` |" % (100 * seconds / cpu, seconds, frame.replace("|", "\\|")))

    table("top exclusive (the frame that was running)", exclusive)
    table("top inclusive (anywhere on the stack)", inclusive)
    table("innermost P2PShare frame (our method the time was spent under)", ours)


if __name__ == "__main__":
    main()
