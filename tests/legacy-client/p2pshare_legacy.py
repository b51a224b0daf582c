#!/usr/bin/env python3
"""A small seed-protocol client (standard library only) for P2PShare's gateway.

Speaks the original Python system's wire format: a 4-byte big-endian length, then that many
bytes of UTF-8 JSON; one reply per request. Used by the end-to-end tests and handy by hand:

    p2pshare_legacy.py [--host H] [--port P] ping|status
    p2pshare_legacy.py --port 9000 cpu --program 'def main(x): return x * x' --args '[7]' [--confidential]
    p2pshare_legacy.py --port 9000 set-mem KEY JSON        get-mem KEY
    p2pshare_legacy.py --port 9000 put-file NAME PATH       get-file NAME PATH
    p2pshare_legacy.py --port 8888 request-cpu | tracker-status | register IP PORT LOAD | unregister IP PORT
    p2pshare_legacy.py --port 9000 raw '{"type":"PING"}'    (any message; prints the reply)
    p2pshare_legacy.py selftest --peer H:P --tracker H:P    (exercises every message; exit 0 when all pass)

Replies are printed as JSON on stdout. Exit codes: 0 ok, 1 the reply is an ERROR or a failed
task, 2 usage, 3 connection failure.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import tempfile


class Connection:
    """One TCP connection; several requests may go over it in sequence."""

    def __init__(self, host, port, timeout=120.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def request(self, message):
        body = json.dumps(message).encode("utf-8")
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        return self.receive()

    def receive(self):
        header = self._exactly(4)
        (length,) = struct.unpack(">I", header)
        return json.loads(self._exactly(length).decode("utf-8"))

    def _exactly(self, count):
        chunks = []
        while count > 0:
            chunk = self.sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ConnectionError("the connection closed before the reply was complete")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def call(host, port, message):
    with Connection(host, port) as connection:
        return connection.request(message)


def endpoint(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def selftest(peer, tracker):
    """Every message type against a peer port and a tracker port; prints one line per check."""
    failures = []

    def check(name, condition, detail):
        print(("ok   " if condition else "FAIL ") + name + ("" if condition else ": " + json.dumps(detail)))
        if not condition:
            failures.append(name)

    ph, pp = peer
    th, tp = tracker
    reply = call(ph, pp, {"type": "PING"})
    check("peer PING -> PONG", reply.get("type") == "PONG", reply)
    reply = call(ph, pp, {"type": "STATUS"})
    check("peer STATUS", reply.get("status") == "OK" and reply.get("peer_port") == pp
          and "queue_size" in reply.get("scheduler", {}).get("stats", {}), reply)

    reply = call(ph, pp, {"type": "CPU_TASK", "task_id": "st-1", "program": "def main(x): return x * x",
                          "function": "main", "args": [12], "confidential": False})
    check("CPU_TASK python", reply.get("type") == "CPU_RESULT" and reply.get("result") == 144
          and reply.get("error") is None and reply.get("task_id") == "st-1" and ":" in str(reply.get("executed_by")), reply)
    reply = call(ph, pp, {"type": "CPU_TASK", "task_id": "st-2", "program": "def main(x): return x + 10",
                          "args": [5], "confidential": True})
    check("CPU_TASK confidential runs on this peer", reply.get("result") == 15
          and reply.get("executed_by") == "%s:%d" % (ph, pp), reply)
    reply = call(ph, pp, {"type": "CPU_TASK", "task_id": "st-3", "program": "def main():\n    return 1 / 0\n", "args": []})
    check("CPU_TASK exception", reply.get("result") is None and "ZeroDivisionError" in str(reply.get("error")), reply)

    value = {"list": [1, 2.5, None, True], "text": "h\u00e9llo \u2603", "nested": {"a": {}}}
    reply = call(ph, pp, {"type": "SET_MEM", "key": "selftest-key", "value": value})
    check("SET_MEM", reply.get("status") == "OK" and reply.get("operation") == "SET_MEM", reply)
    reply = call(ph, pp, {"type": "GET_MEM", "key": "selftest-key"})
    check("GET_MEM returns the same value", reply.get("found") is True and reply.get("value") == value, reply)
    reply = call(ph, pp, {"type": "GET_MEM", "key": "selftest-missing"})
    check("GET_MEM missing key", reply.get("type") == "MEM_RESPONSE" and reply.get("found") is False and reply.get("value") is None, reply)

    data = os.urandom(300_000)
    reply = call(ph, pp, {"type": "PUT_FILE", "filename": "selftest.bin", "data": base64.b64encode(data).decode("ascii")})
    check("PUT_FILE", reply.get("status") == "OK" and reply.get("size") == len(data), reply)
    reply = call(ph, pp, {"type": "GET_FILE", "filename": "selftest.bin"})
    got = base64.b64decode(reply.get("data", "")) if reply.get("found") else b""
    check("GET_FILE returns the same bytes", reply.get("found") is True and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
          {k: v for k, v in reply.items() if k != "data"})
    reply = call(ph, pp, {"type": "GET_FILE", "filename": "selftest-missing.bin"})
    check("GET_FILE missing", reply.get("type") == "FILE_RESPONSE" and reply.get("found") is False, reply)

    with Connection(ph, pp) as connection:
        replies = [connection.request({"type": "PING"}) for _ in range(5)]
        replies.append(connection.request({"type": "NO_SUCH_TYPE"}))
        replies.append(connection.request({"type": "PING"}))
    check("several requests on one connection", [r.get("type") for r in replies] == ["PONG"] * 5 + ["ERROR", "PONG"], replies)

    reply = call(th, tp, {"type": "REQUEST_CPU"})
    check("tracker REQUEST_CPU", reply.get("type") == "CPU_RESPONSE" and isinstance(reply.get("port"), int), reply)
    reply = call(th, tp, {"type": "REGISTER", "ip": "192.0.2.7", "port": 9999, "cpu_load": 0.5})
    check("tracker REGISTER", reply.get("status") == "REGISTERED", reply)
    reply = call(th, tp, {"type": "UPDATE_LOAD", "ip": "192.0.2.7", "port": 9999, "cpu_load": 0.75})
    check("tracker UPDATE_LOAD", reply.get("status") == "LOAD_UPDATED", reply)
    reply = call(th, tp, {"type": "STATUS"})
    listed = [p for p in reply.get("peers", []) if p.get("ip") == "192.0.2.7" and p.get("port") == 9999]
    check("tracker STATUS lists peers", reply.get("status") == "OK" and reply.get("peer_count") == len(reply.get("peers", []))
          and len(listed) == 1 and listed[0].get("cpu_load") == 0.75, reply)
    reply = call(th, tp, {"type": "UNREGISTER", "ip": "192.0.2.7", "port": 9999})
    check("tracker UNREGISTER", reply.get("status") == "UNREGISTERED", reply)
    reply = call(th, tp, {"type": "STATUS"})
    check("tracker STATUS after UNREGISTER", all(p.get("ip") != "192.0.2.7" for p in reply.get("peers", [])), reply)

    print("%d failed" % len(failures))
    return 1 if failures else 0


def main(argv):
    parser = argparse.ArgumentParser(description="seed-protocol client for P2PShare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ping")
    sub.add_parser("status")
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--program", required=True)
    cpu.add_argument("--function", default="main")
    cpu.add_argument("--args", default="[]")
    cpu.add_argument("--confidential", action="store_true")
    cpu.add_argument("--timeout", type=float)
    cpu.add_argument("--language")
    sm = sub.add_parser("set-mem")
    sm.add_argument("key")
    sm.add_argument("value", help="a JSON value")
    gm = sub.add_parser("get-mem")
    gm.add_argument("key")
    pf = sub.add_parser("put-file")
    pf.add_argument("name")
    pf.add_argument("path")
    gf = sub.add_parser("get-file")
    gf.add_argument("name")
    gf.add_argument("path")
    sub.add_parser("request-cpu")
    sub.add_parser("tracker-status")
    rg = sub.add_parser("register")
    rg.add_argument("ip")
    rg.add_argument("peer_port", type=int)
    rg.add_argument("load", type=float)
    ur = sub.add_parser("unregister")
    ur.add_argument("ip")
    ur.add_argument("peer_port", type=int)
    raw = sub.add_parser("raw")
    raw.add_argument("json")
    st = sub.add_parser("selftest")
    st.add_argument("--peer", required=True, type=endpoint)
    st.add_argument("--tracker", required=True, type=endpoint)
    a = parser.parse_args(argv)

    try:
        if a.command == "selftest":
            return selftest(a.peer, a.tracker)
        if a.command == "ping":
            message = {"type": "PING"}
        elif a.command == "status":
            message = {"type": "STATUS"}
        elif a.command == "cpu":
            message = {"type": "CPU_TASK", "task_id": "cli-%d" % os.getpid(), "program": a.program,
                       "function": a.function, "args": json.loads(a.args), "confidential": a.confidential}
            if a.timeout is not None:
                message["timeout"] = a.timeout
            if a.language:
                message["language"] = a.language
        elif a.command == "set-mem":
            message = {"type": "SET_MEM", "key": a.key, "value": json.loads(a.value)}
        elif a.command == "get-mem":
            message = {"type": "GET_MEM", "key": a.key}
        elif a.command == "put-file":
            with open(a.path, "rb") as f:
                message = {"type": "PUT_FILE", "filename": a.name, "data": base64.b64encode(f.read()).decode("ascii")}
        elif a.command == "get-file":
            message = {"type": "GET_FILE", "filename": a.name}
        elif a.command == "request-cpu":
            message = {"type": "REQUEST_CPU"}
        elif a.command == "tracker-status":
            message = {"type": "STATUS"}
        elif a.command == "register":
            message = {"type": "REGISTER", "ip": a.ip, "port": a.peer_port, "cpu_load": a.load}
        elif a.command == "unregister":
            message = {"type": "UNREGISTER", "ip": a.ip, "port": a.peer_port}
        else:
            message = json.loads(a.json)
        reply = call(a.host, a.port, message)
    except (OSError, ConnectionError) as e:
        print("p2pshare_legacy: cannot talk to %s:%d: %s" % (a.host, a.port, e), file=sys.stderr)
        return 3
    except ValueError as e:
        print("p2pshare_legacy: %s" % e, file=sys.stderr)
        return 2

    if a.command == "get-file" and reply.get("found"):
        data = base64.b64decode(reply.pop("data"))
        with open(a.path, "wb") as f:
            f.write(data)
        reply["saved_to"] = a.path
    print(json.dumps(reply))
    failed = reply.get("type") == "ERROR" or (reply.get("type") == "CPU_RESULT" and reply.get("error"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
