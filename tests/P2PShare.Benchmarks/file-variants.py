#!/usr/bin/env python3
"""Back-to-back 1 GiB put/get variants (chunk size, window) through the CLI to peer-3, the CLI given
peer-1's gateway, with dd conv=fdatasync in the same round; for each transfer the wall-clock rate, the
CLI's peak RSS and CPU, and peer-3's and peer-1's peak RSS above idle (VmHWM after clear_refs, minus
VmRSS before) and CPU (/proc/PID/stat). Prints one JSON line per round and variant.

  file-variants.py [ROUNDS] [MIB] [VARIANT,...]   with deploy/local/cluster.sh up 3 running and
  P2PSHARE_CLUSTER_DIR / P2PSHARE_GATEWAY_PORT_BASE exported as for it. P2PSHARE_RELAY_CLI=DLL adds
  the variant "relay-1M-w8": a CLI built before transfers went to the target's own gateway."""
import json, os, subprocess, sys, time, resource
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
only = sys.argv[3].split(",") if len(sys.argv) > 3 else None
cdir = os.environ["P2PSHARE_CLUSTER_DIR"]
repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
new_cli = f"{repo}/src/P2PShare.Cli/bin/Release/net10.0/p2pshare.dll"
old_cli = os.environ.get("P2PSHARE_RELAY_CLI")
gw = f"127.0.0.1:{os.environ['P2PSHARE_GATEWAY_PORT_BASE']}"
work = os.path.join(cdir, "file-variants"); os.makedirs(work, exist_ok=True)
src = f"{work}/source.bin"
if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
    subprocess.run(["dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={mib}", "status=none"], check=True)
pid = {p: int(open(f"{cdir}/run/{p}.pid").read()) for p in ("peer-1", "peer-3")}
tick = os.sysconf("SC_CLK_TCK")
def status(p, key):
    for line in open(f"/proc/{p}/status"):
        if line.startswith(key): return int(line.split()[1]) / 1024
def cpu(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
variants = {
    "relay-1M-w8": (old_cli, {}),
    "direct-1M-w8": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(1 << 20)}),
    "direct-256K-w8": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(256 << 10)}),
    "direct-64K-w8": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(64 << 10)}),
    "direct-1M-w4": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(1 << 20), "P2PSHARE_FILE_WINDOW": "4"}),
    "direct-1M-w16": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(1 << 20), "P2PSHARE_FILE_WINDOW": "16"}),
    "direct-256K-w16": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(256 << 10), "P2PSHARE_FILE_WINDOW": "16"}),
    "direct-64K-w16": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(64 << 10), "P2PSHARE_FILE_WINDOW": "16"}),
    "direct-64K-w32": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(64 << 10), "P2PSHARE_FILE_WINDOW": "32"}),
    "direct-128K-w16": (new_cli, {"P2PSHARE_FILE_CHUNK_BYTES": str(128 << 10), "P2PSHARE_FILE_WINDOW": "16"}),
}
if old_cli is None: del variants["relay-1M-w8"]
if only: variants = {k: v for k, v in variants.items() if k in only}
def run(cli, env, args):
    idle = {n: status(p, "VmRSS:") for n, p in pid.items()}
    for p in pid.values(): open(f"/proc/{p}/clear_refs", "w").write("5")
    c0 = {n: cpu(p) for n, p in pid.items()}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(["dotnet", cli, "--gateway", gw] + args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try: peak = max(peak, status(proc.pid, "VmHWM:") or 0)
        except (FileNotFoundError, ProcessLookupError): pass
        time.sleep(0.02)
    err = proc.stderr.read().decode()
    el = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0: raise SystemExit(f"{args}: exit {proc.returncode}: {err}")
    out = {"MBps": round(mib * 1.048576 / el, 1), "cliPeakMB": round(peak, 1),
           "cliCpuS": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 2)}
    for n, p in pid.items():
        out[f"{n}AboveIdleMB"] = round(status(p, "VmHWM:") - idle[n], 1)
        out[f"{n}CpuS"] = round(cpu(p) - c0[n], 2)
    return out
for r in range(rounds):
    t = time.monotonic(); subprocess.run(["dd", "if=/dev/zero", f"of={work}/dd.bin", "bs=1M", f"count={mib}", "conv=fdatasync", "status=none"], check=True); ddm = mib * 1.048576 / (time.monotonic() - t); os.remove(f"{work}/dd.bin")
    print(json.dumps({"round": r, "ddMBps": round(ddm, 1), "load": os.getloadavg()[0]}), flush=True)
    for name, (cli, env) in variants.items():
        put = run(cli, env, ["file", "put", src, "--name", "bench.bin", "--peer", "peer-3"])
        get = run(cli, env, ["file", "get", "bench.bin", "-o", f"{work}/back.bin", "--peer", "peer-3"])
        if os.path.getsize(f"{work}/back.bin") != mib << 20: raise SystemExit("size differs")
        os.remove(f"{work}/back.bin")
        print(json.dumps({"round": r, "variant": name, "put": put, "get": get}), flush=True)
