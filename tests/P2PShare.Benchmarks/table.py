#!/usr/bin/env python3
"""Turns p2pshare-bench's JSON lines into the markdown table of docs/BENCHMARKS.md."""
import json
import sys


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "%.1f" % v if abs(v) >= 10 else "%.2f" % v
    if isinstance(v, dict):
        return " / ".join("%s %s" % (k, fmt(x)) for k, x in v.items())
    return str(v)


def row(line):
    s = line["scenario"]
    if "error" in line:
        return s, "FAILED: " + line["error"], ""
    if s == "tasks":
        detail = "CPU per task: cluster %s µs (net of idle %s µs), client %s µs" % (
            fmt(line.get("cpuUsPerTask")), fmt(line.get("netCpuUsPerTask")), fmt(line.get("clientCpuUsPerTask")))
        if "sequentialP50Ms" in line:
            detail += "; one at a time p50 %s ms, cluster CPU %s µs per task" % (fmt(line["sequentialP50Ms"]), fmt(line.get("sequentialCpuUsPerTask")))
        if line.get("timeLimited"):
            detail += "; stopped at the time limit after %d tasks" % line["tasks"]
        return ("tasks (%s, %s, %d submitters)" % (line.get("language", "csharp"), "confidential" if line["confidential"] else "routed", line["submitters"]),
                "%s tasks/s; p50 %s ms, p99 %s ms, p99.9 %s ms" % (fmt(line["tasksPerSec"]), fmt(line["p50Ms"]), fmt(line["p99Ms"]), fmt(line["p999Ms"])), detail)
    if s == "batch":
        return ("batch (%d tasks, %d per call)" % (line["tasks"], line["batchSize"]),
                "%s tasks/s; p50 %s ms, p99 %s ms" % (fmt(line["tasksPerSec"]), fmt(line["p50Ms"]), fmt(line["p99Ms"])),
                "CPU per task: cluster %s µs, client %s µs; %d promoted to the durable path" % (
                    fmt(line.get("cpuUsPerTask")), fmt(line.get("clientCpuUsPerTask")), line.get("promoted", 0)))
    if s == "open":
        return ("open loop (%s tasks/s offered for %s s)" % (fmt(line["offeredRate"]), fmt(line["offeredSeconds"])),
                "achieved %s tasks/s; p50 %s ms, p99 %s ms (from when each task was due)" % (fmt(line["achievedRate"]), fmt(line["p50Ms"]), fmt(line["p99Ms"])),
                "%d offered, %d sent late (> %s ms), %d dropped, %d finished, %d failed, %d abandoned; cluster CPU %s µs per finished task" % (
                    line["tasks"], line["late"], fmt(line["lateThresholdMs"]), line["dropped"], line["finished"], line["failed"], line["abandoned"],
                    fmt(line.get("cpuUsPerTask"))))
    if s == "compile":
        return ("compile (submit to result)", "first %s ms, new program %s ms, cached %s ms" % (fmt(line["firstMs"]), fmt(line["newMs"]), fmt(line["cachedMs"])),
                "queue time (compile + scheduling): new %s ms, cached %s ms" % (fmt(line["newQueueMs"]), fmt(line["cachedQueueMs"])))
    if s == "balance":
        return ("balance (%d CPU-bound tasks)" % line["tasks"], "makespan %s ms = %s x ideal (%s ms)" % (fmt(line["makespanMs"]), fmt(line["makespanRatio"]), fmt(line["idealMs"])),
                "ideal = %d x %s ms CPU per task (measured alone) / min(%d slots, %d cores); per peer: %s" % (
                    line["tasks"], fmt(line["cpuPerTaskMs"]), line["slots"], line["cores"], fmt(line["perPeer"])))
    if s == "fairness":
        return ("fairness (time slicing %s)" % ("on" if line["timeSlicing"] else "off"),
                "short task %s ms (max %s ms)" % (fmt(line["shortTaskMs"]), fmt(line["shortTaskMaxMs"])),
                "%d x %d s CPU-bound tasks on %d slots" % (line["longTasks"], line["longTaskSeconds"], line["slots"]))
    if s == "mem":
        redis = ("redis-benchmark %s ops/s (p99 %s ms); ratio %s" % (fmt(line["redisOpsPerSec"]), fmt(line["redisP99Ms"]), fmt(line["vsRedis"]))
                 if "redisOpsPerSec" in line else "no redis")
        cpu = ("; CPU per op: client %s us, peers %s us" % (fmt(line["clientCpuUsPerOp"]), fmt(line.get("peersCpuUsPerOp")))
               if "clientCpuUsPerOp" in line else "")
        hop = ("; through any gateway (one more hop) %s ops/s" % fmt(line["anyGatewayOpsPerSec"]) if "anyGatewayOpsPerSec" in line else "")
        return ("mem (64 B, concurrency %d, client on the peer's gateway)" % line["concurrency"],
                "%s ops/s; p50 %s ms, p99 %s ms%s%s" % (fmt(line["opsPerSec"]), fmt(line["p50Ms"]), fmt(line["p99Ms"]), cpu, hop), redis)
    if s == "redis":
        shape = "redis-benchmark %s -d %d, -c %d%s" % (line["test"], line["valueBytes"], line["clients"],
                                                       " -P %d" % line["pipeline"] if line["pipeline"] > 1 else "")
        cpu = "; server CPU %s us/op" % fmt(line["cpuUsPerOp"]) if line.get("cpuUsPerOp") is not None else ""
        if "vsRedis" in line:
            return ("%s: %s RESP port" % (shape, line["server"]), "%s ops/s; p99 %s ms%s" % (fmt(line["opsPerSec"]), fmt(line["p99Ms"]), cpu),
                    "redis-server %s ops/s; ratio %s" % (fmt(line["redisOpsPerSec"]), fmt(line["vsRedis"])))
        return ("%s: redis-server" % shape, "", "%s ops/s; p99 %s ms%s" % (fmt(line["opsPerSec"]), fmt(line["p99Ms"]), cpu))
    if s == "file":
        return ("file (%d MiB, CLI to %s)" % (line["sizeMiB"], line["peer"]),
                "put %s MB/s, get %s MB/s; CLI peak RSS %s MB" % (fmt(line["putMBps"]), fmt(line["getMBps"]), fmt(line["peakRssMB"])),
                "dd write %s MB/s; peer peak RSS put %s / get %s MB" % (fmt(line["ddMBps"]), fmt(line.get("peerPutPeakRssMB")), fmt(line.get("peerGetPeakRssMB"))))
    if s == "legacy":
        detail = "SET_MEM/GET_MEM %s ops/s, p99 %s ms" % (fmt(line["memOpsPerSec"]), fmt(line["memP99Ms"]))
        if "originalEndpoint" in line:
            detail += "; original (%s): Python tasks %s/s (p50 %s ms), mem %s ops/s; ratio tasks %s, mem %s" % (
                line["originalEndpoint"], fmt(line["originalTasksPerSec"]), fmt(line["originalP50Ms"]), fmt(line["originalMemOpsPerSec"]),
                fmt(line["vsOriginal"]), fmt(line["memVsOriginal"]))
        return ("seed protocol (%s, %d clients, 1 connection per request)" % (line["endpoint"], line["clients"]),
                "Python tasks %s/s; p50 %s ms, p99 %s ms" % (fmt(line["tasksPerSec"]), fmt(line["p50Ms"]), fmt(line["p99Ms"])), detail)
    return s, json.dumps(line), ""


print("| scenario | P2PShare | comparison / detail |")
print("|---|---|---|")
with open(sys.argv[1]) as f:
    for text in f:
        text = text.strip()
        if text:
            print("| %s | %s | %s |" % row(json.loads(text)))
