"""P2PShare's Python sandbox worker. Started by a peer, never by users.

Speaks the peer's worker protocol (the same as the .NET worker's) over stdin/stdout: every message
is a frame -- a 4-byte little-endian payload length, then the payload: a 4-byte little-endian header
length, a UTF-8 JSON header, then raw bytes (here: a program's source in a request, the result JSON
in a reply). The first frame is a hello; then one reply per request, one request at a time.

The sandbox is defence in depth, not a security boundary (see the README): the peer starts this
script with `python3 -I -B` in an empty temporary folder, inside an empty network namespace when
the machine allows it, and this script lowers its own resource limits and installs an audit hook
that refuses network, processes, file access outside the interpreter's library, ctypes and the
like before any program runs. Time slicing (SIGSTOP/SIGCONT), timeouts and cancels are the peer's:
it stops or kills this process.
"""

import builtins
import hashlib
import inspect
import io
import json
import os
import resource
import struct
import sys
import traceback
import types

NONE, COMPILE_ERROR, NOT_ALLOWED, INVALID_ARGUMENTS, EXCEPTION, OUT_OF_MEMORY, CRASHED, RESULT_TOO_LARGE = 0, 1, 2, 3, 4, 6, 7, 8
RECYCLE_HINT = 1000  # the peer recycles workers; this only bounds the cache if it does not

_armed = False


class NotAllowed(Exception):
    """Raised by the audit hook for an operation the sandbox refuses."""


DENIED_PREFIXES = (
    "socket.", "ssl.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
    "os.system", "os.kill", "os.killpg", "os.remove", "os.unlink", "os.rename", "os.rmdir", "os.mkdir",
    "os.chmod", "os.chown", "os.chdir", "os.truncate", "os.link", "os.symlink", "os.utime", "os.chflags", "os.setxattr", "os.removexattr", "os.startfile", "os.add_dll_directory",
    "shutil.", "ctypes.", "pty.", "mmap.", "fcntl.", "resource.setrlimit", "sys.remote_exec",
    "urllib.Request", "http.client.connect", "ftplib.", "smtplib.", "telnetlib.", "imaplib.", "poplib.",
    "nntplib.", "webbrowser.", "glob.glob", "tempfile.mkstemp", "tempfile.mkdtemp", "builtins.input",
    "_thread.start_new_thread", "sqlite3.connect", "winreg.", "msvcrt.",
)
DENIED_MODULES = frozenset((
    "ctypes", "_ctypes", "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing",
    "mmap", "pty", "fcntl", "ssl", "_ssl", "socket", "_socket", "threading", "_thread", "signal",
))
_readable_roots = ()


def _audit(event, args):
    if not _armed:
        return
    if event == "open":
        path, mode = args[0], args[1]
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writing = writing or bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        if writing or not isinstance(path, (str, bytes)) or not _under_library(path):
            raise NotAllowed("open(%r) is not allowed in the sandbox: programs cannot read or write files" % (path,))
        return
    if event in ("os.listdir", "os.scandir"):
        # The import system lists the library's folders to find modules; programs see nothing else.
        path = args[0] if args and args[0] is not None else "."
        if isinstance(path, (str, bytes)) and _under_library(path):
            return
        raise NotAllowed("%s(%r) is not allowed in the sandbox: programs cannot list folders" % (event, path))
    if event == "import":
        name = args[0] if args else ""
        if isinstance(name, str) and name.split(".")[0] in DENIED_MODULES:
            raise NotAllowed("import %s is not allowed in the sandbox" % name)
        return
    if event.startswith(DENIED_PREFIXES):
        raise NotAllowed("%s is not allowed in the sandbox" % event)


def _under_library(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    full = os.path.realpath(path)
    return any(full == root or full.startswith(root + os.sep) for root in _readable_roots)


class CappedText(io.TextIOBase):
    """print() target: keeps the first `limit` bytes (UTF-8) of what a program writes."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.cut = False

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str")
        if self.size < self.limit:
            data = text.encode("utf-8", "replace")[: self.limit - self.size]
            self.parts.append(data)
            self.size += len(data)
            if len(data) < len(text):
                self.cut = self.cut or self.size >= self.limit
        else:
            self.cut = True
        return len(text)

    def value(self):
        text = b"".join(self.parts).decode("utf-8", "ignore")
        return text + ("\n[output cut at %d bytes]" % self.limit if self.cut else "")


class Protocol:
    def __init__(self, inp, out):
        self.inp = inp
        self.out = out

    def read(self):
        prefix = self.inp.read(4)
        if not prefix:
            return None
        if len(prefix) < 4:
            raise EOFError("the pipe closed inside a frame")
        (length,) = struct.unpack("<i", prefix)
        if length < 4 or length > 512 * 1024 * 1024:
            raise ValueError("bad frame length %d" % length)
        payload = self.inp.read(length)
        if len(payload) < length:
            raise EOFError("the pipe closed inside a frame")
        (header_length,) = struct.unpack("<i", payload[:4])
        header = json.loads(payload[4:4 + header_length].decode("utf-8"))
        return header, payload[4 + header_length:]

    def write(self, header, body=b""):
        head = json.dumps(header).encode("utf-8")
        self.out.write(struct.pack("<ii", 4 + len(head) + len(body), len(head)) + head + body)
        self.out.flush()


def reply(kind, error=None, output="", body=b""):
    return {"Kind": kind, "Error": error, "Output": output}, body


def describe(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def where(e):
    """' (line N)' for the innermost frame of the program, if there is one."""
    # walk_tb reads no source files (the audit hook may still be armed).
    lines = [line for frame, line in traceback.walk_tb(e.__traceback__) if frame.f_code.co_filename == "<program>"]
    return " (line %d)" % lines[-1] if lines else ""


def defined_functions(namespace):
    return sorted(k for k, v in namespace.items() if isinstance(v, types.FunctionType) and not k.startswith("__"))


def run(code, request):
    global _armed
    output = CappedText(max(0, int(request.get("MaxOutputBytes", 65536))))
    max_result = int(request.get("MaxResultBytes", 16 * 1024 * 1024))
    function = request.get("Function") or "main"
    try:
        args = json.loads(request.get("ArgsJson") or "[]")
    except ValueError as e:
        return reply(INVALID_ARGUMENTS, "InvalidArguments: args are not valid JSON: %s" % e)
    if not isinstance(args, list):
        return reply(INVALID_ARGUMENTS, "InvalidArguments: args must be a JSON array")

    namespace = {"__name__": "__p2pshare__", "__builtins__": builtins}
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
    _armed = True
    try:
        try:
            exec(code, namespace)
            fn = namespace.get(function)
            if not callable(fn):
                defined = defined_functions(namespace)
                return reply(INVALID_ARGUMENTS, "InvalidArguments: no function '%s'; the program defines: %s"
                             % (function, ", ".join(defined) if defined else "no functions"), output.value())
            try:
                inspect.signature(fn).bind(*args)
            except TypeError as e:
                return reply(INVALID_ARGUMENTS, "InvalidArguments: %s() cannot take %d argument(s): %s" % (function, len(args), e), output.value())
            except ValueError:
                pass  # no signature to check (a builtin); the call itself will tell
            result = fn(*args)
            if inspect.iscoroutine(result):
                result = drive(result)
        except NotAllowed as e:
            return reply(NOT_ALLOWED, "NotAllowed: %s" % e, output.value())
        except MemoryError:
            raise
        except RecursionError as e:
            return reply(EXCEPTION, "Exception: RecursionError: %s%s" % (e, where(e)), output.value())
        except BaseException as e:  # SystemExit and KeyboardInterrupt too: a program cannot end the worker
            cause = e.__context__ if isinstance(e, NotAllowed) else None
            if isinstance(cause, NotAllowed):
                return reply(NOT_ALLOWED, "NotAllowed: %s" % cause, output.value())
            return reply(EXCEPTION, "Exception: %s%s" % (describe(e), where(e)), output.value())
    finally:
        _armed = False
        sys.stdout, sys.stderr = saved

    try:
        data = json.dumps(result, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        return reply(EXCEPTION, "Exception: the result of type %s is not JSON-serializable: %s" % (type(result).__name__, e), output.value())
    if len(data) > max_result:
        return reply(RESULT_TOO_LARGE, "ResultTooLarge: the result is %d bytes; the limit is %d" % (len(data), max_result), output.value())
    return reply(NONE, None, output.value(), data)


def drive(coroutine):
    """Runs an async main that never waits on an event loop (the sandbox has none)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise NotAllowed("awaiting the event loop (asyncio) is not allowed in the sandbox")


def compile_program(source):
    try:
        return compile(source, "<program>", "exec"), None
    except SyntaxError as e:
        return None, "CompileError: (%s,%s): %s: %s" % (e.lineno, e.offset, type(e).__name__, e.msg)
    except (ValueError, MemoryError) as e:
        return None, "CompileError: %s" % describe(e)


def main():
    global _readable_roots
    memory_limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0

    # The protocol gets private copies of the pipes; fd 0 and 1 become /dev/null so that a program
    # can neither read requests nor corrupt replies by writing to standard output.
    inp = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    protocol = Protocol(inp, out)

    if memory_limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix) if p}
    _readable_roots = tuple(sorted(roots))
    # Modules programs commonly use, loaded before the hook is armed (imports later are checked).
    import math, random, re, string, itertools, functools, collections, statistics, decimal, fractions, datetime, heapq, bisect  # noqa: F401
    sys.addaudithook(_audit)

    protocol.write({"ProcessId": os.getpid()})
    programs = {}
    while True:
        frame = protocol.read()
        if frame is None:
            return 0
        request, body = frame
        key = request.get("Hash", "")
        try:
            if body:
                if len(programs) >= RECYCLE_HINT:
                    programs.clear()
                programs[key] = compile_program(body.decode("utf-8", "replace"))
            if key not in programs:
                header, data = reply(CRASHED, "Crashed: the worker does not hold program %s" % key)
            else:
                code, error = programs[key]
                header, data = reply(COMPILE_ERROR, error) if code is None else run(code, request)
        except MemoryError:
            # The heap cap was hit: say so, then leave; this worker's memory is not to be trusted.
            programs.clear()
            protocol.write(*reply(OUT_OF_MEMORY, "OutOfMemory: the program exceeded the worker's memory limit of %d MiB" % (memory_limit >> 20)))
            return 3
        protocol.write(header, data)


if __name__ == "__main__":
    sys.exit(main())
