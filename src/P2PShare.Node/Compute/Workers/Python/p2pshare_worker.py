"""P2PShare's Python sandbox worker. Started by a peer, never by users.

Speaks the peer's worker protocol (the same as the .NET worker's) over stdin/stdout: every message
is a frame -- a 4-byte little-endian payload length, then the payload: a 4-byte little-endian header
length, a UTF-8 JSON header, then raw bytes (here: a program's source in a request, the result JSON
in a reply). The first frame is a hello; then one reply per request, one request at a time.

It is a zygote: it starts behind the peer's kernel wall (or, with Compute:Isolation=none, in an
empty folder with an empty environment), imports the modules programs commonly use, makes itself
non-dumpable (so a task cannot read or write it through /proc/PID/mem), lowers its resource limits
and arms an audit hook that refuses network, processes, file access outside the interpreter's
library, ctypes and the like; then it says hello. Programs never run in the zygote: it forks a task
process (a runner) ahead of need, which closes the protocol pipes, waits until the zygote has set its
limits (RLIMIT_AS at its heap share, RLIMIT_CPU as a backstop), and runs the zygote's requests in a
fresh namespace each, compiling each program text once (the zygote keeps only the text). Behind the
kernel wall a runner serves the next request too while it is clean -- its interpreter as the zygote
left it (modules, builtins, import lists, signal handlers, timers, settings), one thread, its own
descriptors, no process left in the sandbox, under half of its CPU and memory backstops -- else the
zygote kills it and forks the next one, so nothing a task changes or leaves running meets another
task. A fork costs ~2 ms of CPU; a reused runner tens of microseconds. The zygote relays the reply, or
reports how the runner died, and kills whatever a task left behind. The peer binds a zygote to one
submitter. Time slicing (the cgroup freezer, or SIGSTOP/SIGCONT to the zygote's process group),
timeouts and cancels are the peer's: it stops or kills the whole sandbox.

Usage: python3 -I -B p2pshare_worker.py HEAP_LIMIT_BYTES [CPU_SECONDS_PER_TASK] [--reap] [--no-audit-hook]

--reap: the zygote has a PID namespace and /proc of its own, so after each task it kills every
process it sees but PID 1 and itself.
--no-audit-hook: tasks run with no audit hook and none of its tripwires (Compute:PythonAuditHook=false),
so that tests can show the kernel wall holding on its own. Never for a peer that serves strangers.
"""

import builtins
import gc
import io
import json
import operator
import os
import resource
import select
import signal
import struct
import sys
import time
import types

NONE, COMPILE_ERROR, NOT_ALLOWED, INVALID_ARGUMENTS, EXCEPTION, OUT_OF_MEMORY, CRASHED, RESULT_TOO_LARGE = 0, 1, 2, 3, 4, 6, 7, 8
MAX_FRAME_BYTES = 512 * 1024 * 1024
MAX_ERROR_CHARS = 4096  # WorkerFrames.MaxErrorChars: the peer refuses longer errors (counted in UTF-16 units)
PROGRAM_FILE = "<program>"
# Bound once: a program that replaces json.dumps or json.loads changes what it sees, not how its
# reply is framed.
JSON_DUMPS, JSON_LOADS = json.dumps, json.loads

# Events refused outright (prefix match): network, processes, ctypes, file changes, process limits.
DENIED_EVENT_PREFIXES = (
    "socket.", "ssl.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
    "os.system", "os.kill", "os.killpg", "os.remove", "os.unlink", "os.rename", "os.rmdir", "os.mkdir",
    "os.chmod", "os.chown", "os.chdir", "os.truncate", "os.link", "os.symlink", "os.utime", "os.chflags",
    "os.setxattr", "os.removexattr", "os.putenv", "os.unsetenv", "os.startfile", "os.add_dll_directory",
    "shutil.", "ctypes.", "pty.", "mmap.", "fcntl.", "resource.setrlimit", "resource.prlimit", "syslog.",
    "urllib.Request", "http.client.connect", "ftplib.", "smtplib.", "telnetlib.", "imaplib.", "poplib.",
    "nntplib.", "webbrowser.", "glob.glob", "tempfile.mkstemp", "tempfile.mkdtemp", "builtins.input",
    "sqlite3.connect", "sqlite3.enable_load_extension", "sqlite3.load_extension", "winreg.", "msvcrt.",
    # Reaching the hook's own objects (and so its allow-lists) or forging code objects (which can
    # corrupt the interpreter's memory) goes around the hook.
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__", "sys.addaudithook",
    "sys.settrace", "sys.setprofile", "sys.remote_exec",
)

# Top-level modules whose import is refused: native interop, network, processes, and modules that
# read or write files in C, where no audit event sees it (pwd/spwd read /etc/passwd and /etc/shadow).
DENIED_MODULES = frozenset((
    "ctypes", "_ctypes", "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing",
    "_posixshmem", "mmap", "pty", "fcntl", "termios", "tty", "ssl", "_ssl", "socket", "_socket", "asyncio", "pwd", "grp", "spwd", "nis", "dbm", "_dbm", "_gdbm", "readline", "syslog",
    "ossaudiodev", "_tkinter",
    # Subinterpreters run with no audit hook at all (the names differ across Python versions), and
    # the test-only C APIs start one (_testcapi.run_in_subinterp) or rewrite the interpreter's
    # configuration (_testinternalcapi.set_config).
    "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_interpchannels", "_interpqueues",
    "_testcapi", "_testinternalcapi",
))

# Functions that act on other processes without raising an audit event. They are replaced by refusals
# (a tripwire: built-in modules cannot be rebuilt once the zygote sealed _imp.create_builtin, but native
# code reaches the system calls anyway; the PID namespace is what really keeps other processes out of reach).
UNAUDITED_PROCESS_FUNCTIONS = {
    "posix": ("pidfd_open", "setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "setpgid", "setpgrp", "setsid", "setns", "unshare"),
    "os": ("pidfd_open", "setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "setpgid", "setpgrp", "setsid", "setns", "unshare"),
    "_signal": ("pidfd_send_signal",),
}


class NotAllowed(Exception):
    """Raised by the audit hook for an operation the sandbox refuses."""


class ImportNotAllowed(NotAllowed, ImportError):
    """A refused import: an ImportError too, so that a library's optional import degrades as if the module were missing."""


def make_audit_hook(readable_roots, zygote_pid):
    """
    The audit hook. Everything it consults is bound here, as immutable values and built-in (C) objects:
    a program can rebind module globals and builtins, but not a closure it cannot reach (the hook is
    referenced only by the interpreter, and gc's object walks are refused). A program may change the
    NotAllowed classes, but whatever the hook raises, even another error, still stops the operation.
    The zygote itself (zygote_pid) runs only this script, never a program, so the hook lets it fork,
    set its children's limits and kill what they leave; every forked task is checked in full.
    """
    denied_prefixes = DENIED_EVENT_PREFIXES
    denied_modules = DENIED_MODULES
    roots = tuple(readable_roots)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    not_allowed, import_not_allowed = NotAllowed, ImportNotAllowed
    str_type, bytes_type, int_type = str, bytes, int
    is_instance = isinstance
    getcwd = os.getcwd
    getpid = os.getpid

    def normalized(path):
        # Lexical, with str methods only: no helper a program could have replaced.
        if is_instance(path, bytes_type):
            path = path.decode("utf-8", "surrogateescape")
        if not is_instance(path, str_type):
            return None
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def readable(path):
        full = normalized(path)
        if full is None:
            return False
        for root in roots:
            if full == root or full.startswith(root + "/"):
                return True
        return False

    str_split = str.split  # unbound: a str subclass's own split cannot lie about a module's name

    def audit(event, args):
        if getpid() == zygote_pid:
            return
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            writing = is_instance(mode, str_type) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)
            if writing or (is_instance(flags, int_type) and flags & write_flags):
                raise not_allowed("open(%r) for writing is not allowed in the sandbox" % (path,))
            if not readable(path):
                raise not_allowed("open(%r) is not allowed in the sandbox: programs cannot read files" % (path,))
            return
        if event == "os.listdir" or event == "os.scandir":
            # The import system lists the library's folders to find modules; programs see nothing else.
            path = args[0] if args[0] is not None else "."
            if not readable(path):
                raise not_allowed("%s(%r) is not allowed in the sandbox: programs cannot list folders" % (event, path))
            return
        if event == "import":
            # Every part of the name: an extension module is initialised by its last part
            # (spec_from_file_location('x._ctypes', ...) loads _ctypes), a package by its first.
            name = args[0]
            if is_instance(name, str_type):
                for part in str_split(name, "."):
                    if part in denied_modules:
                        raise import_not_allowed("import %s is not allowed in the sandbox" % str_type.__str__(name))
            return
        if event.startswith(denied_prefixes):
            raise not_allowed("%s is not allowed in the sandbox" % event)

    return audit


def seal_builtin_modules():
    """
    Loads every built-in module a program may use, then makes _imp.create_builtin refuse: a built-in
    module created through importlib (import_module, module_from_spec) raises no audit event, so the
    hook would never see _posixsubprocess or pwd arrive that way. The refusal holds no reference to
    the original function, so a program cannot dig it out of a closure.
    """
    import _imp

    for name in sys.builtin_module_names:
        if name not in DENIED_MODULES and name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                pass

    def create_builtin(spec):
        raise ImportNotAllowed("import %s is not allowed in the sandbox" % getattr(spec, "name", "?"))

    _imp.create_builtin = create_builtin


def neuter_unaudited_functions():
    def refuse(*args, **kwargs):
        raise NotAllowed("acting on other processes is not allowed in the sandbox")

    for module_name, names in UNAUDITED_PROCESS_FUNCTIONS.items():
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and hasattr(module, name):
                setattr(module, name, refuse)


class CappedText(io.TextIOBase):
    """print() target: keeps the first `limit` bytes (UTF-8) of what a program writes, like the .NET worker."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.cut = False

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        if self.cut:
            return len(text)
        data = text.encode("utf-8", "replace")
        if self.size + len(data) <= self.limit:
            self.parts.append(data)
            self.size += len(data)
        else:
            # Keep whole characters only.
            kept = data[: self.limit - self.size].decode("utf-8", "ignore").encode("utf-8")
            self.parts.append(kept)
            self.size += len(kept)
            self.cut = True
        return len(text)

    def value(self):
        text = b"".join(self.parts).decode("utf-8", "replace")
        return text + ("\n[output truncated at %d bytes]" % self.limit if self.cut else "")


class Protocol:
    """Frames on private copies of the pipes (see main)."""

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
        if length < 4 or length > MAX_FRAME_BYTES:
            raise ValueError("bad frame length %d" % length)
        payload = self.inp.read(length)
        if len(payload) < length:
            raise EOFError("the pipe closed inside a frame")
        (header_length,) = struct.unpack("<i", payload[:4])
        if header_length < 0 or header_length > length - 4:
            raise ValueError("bad header length %d" % header_length)
        header = JSON_LOADS(payload[4:4 + header_length].decode("utf-8"))
        return header, payload[4 + header_length:]

    def write(self, header, body=b""):
        head = JSON_DUMPS(header).encode("utf-8")
        self.out.write(struct.pack("<ii", 4 + len(head) + len(body), len(head)) + head + body)
        self.out.flush()


def reply(kind, error=None, output="", body=b""):
    # Property names exactly as the .NET side's WorkerResponseHeader (System.Text.Json, case-sensitive);
    # main adds the request's Sequence.
    return {"Kind": kind, "Error": cut(error), "Output": output}, body


def cut(text):
    """An error the peer accepts: well-formed (no lone surrogates) and at most MAX_ERROR_CHARS UTF-16 units."""
    if text is None:
        return None
    text = text.encode("utf-8", "replace").decode("utf-8")
    units = text.encode("utf-16-le")
    if len(units) // 2 <= MAX_ERROR_CHARS:
        return text
    return units[: (MAX_ERROR_CHARS - 3) * 2].decode("utf-16-le", "ignore") + "..."


def describe(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def where(e):
    """' (line N)' for the innermost frame of the program, if there is one."""
    line, tb = None, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == PROGRAM_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return " (line %d)" % line if line is not None else ""


def defined_functions(namespace):
    return sorted(k for k, v in namespace.items()
                  if isinstance(v, types.FunctionType) and v.__code__.co_filename == PROGRAM_FILE and not k.startswith("__"))


def run(code, request):
    output = CappedText(max(0, int(request.get("MaxOutputBytes", 65536))))
    max_result = int(request.get("MaxResultBytes", 16 * 1024 * 1024))
    function = request.get("Function") or "main"
    try:
        args = JSON_LOADS(request.get("ArgsJson") or "[]")
    except ValueError as e:
        return reply(INVALID_ARGUMENTS, "InvalidArguments: args are not valid JSON: %s" % e)
    if not isinstance(args, list):
        return reply(INVALID_ARGUMENTS, "InvalidArguments: args must be a JSON array")

    # A fresh namespace per run, as the .NET worker makes a fresh submission per run. Not "__main__",
    # so that an `if __name__ == "__main__":` block does not run.
    namespace = {"__name__": "__p2pshare__", "__builtins__": builtins}
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
    try:
        exec(code, namespace)
        fn = namespace.get(function)
        if not callable(fn):
            defined = defined_functions(namespace)
            return reply(INVALID_ARGUMENTS, "InvalidArguments: no function '%s'; the program defines: %s"
                         % (function, ", ".join(defined) if defined else "no functions"), output.value())
        try:
            result = fn(*args)
        except TypeError as e:
            # Raised by the call itself, not inside the function (no frame of its own in the traceback):
            # the arguments do not fit its parameters.
            if e.__traceback__.tb_next is None:
                return reply(INVALID_ARGUMENTS, "InvalidArguments: %s() cannot take %d argument(s): %s" % (function, len(args), e), output.value())
            raise
        if isinstance(result, types.CoroutineType):
            result = drive(result)
        # Still under the hook: encoding a dict subclass calls the program's own items().
        try:
            data = JSON_DUMPS(result, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            return reply(EXCEPTION, "Exception: the result of type %s is not JSON-serializable: %s" % (type(result).__name__, e), output.value())
        if len(data) > max_result:
            return reply(RESULT_TOO_LARGE, "ResultTooLarge: the result is %d bytes; the limit is %d" % (len(data), max_result), output.value())
        return reply(NONE, None, output.value(), data)
    except NotAllowed as e:
        return reply(NOT_ALLOWED, "NotAllowed: %s" % e, output.value())
    except MemoryError:
        raise
    except BaseException as e:  # SystemExit and KeyboardInterrupt too: a program cannot end the worker
        refused = e.__context__
        if isinstance(refused, NotAllowed):  # a refusal the program caught and turned into another error
            return reply(NOT_ALLOWED, "NotAllowed: %s" % refused, output.value())
        return reply(EXCEPTION, "Exception: %s%s" % (describe(e), where(e)), output.value())
    finally:
        sys.stdout, sys.stderr = saved
        # The program's functions refer to this namespace and it to them: cleared, nothing of this
        # task waits for the garbage collector in a process that may serve the next one.
        namespace.clear()


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
        return compile(source, PROGRAM_FILE, "exec", dont_inherit=True), None
    except SyntaxError as e:
        return None, "CompileError: (%s,%s): %s: %s" % (e.lineno, e.offset, type(e).__name__, e.msg)
    except (ValueError, MemoryError, RecursionError) as e:
        return None, "CompileError: %s" % describe(e)


# Imported once by the zygote so that tasks find them loaded: what programs commonly use.
PRELOADED_MODULES = (
    "math", "cmath", "random", "statistics", "decimal", "fractions", "numbers", "re", "string", "textwrap",
    "collections", "collections.abc", "itertools", "functools", "operator", "heapq", "bisect", "array",
    "copy", "dataclasses", "enum", "typing", "datetime", "time", "calendar", "hashlib", "hmac", "base64",
    "binascii", "zlib", "struct", "json", "csv", "io", "unicodedata", "difflib", "pprint", "contextlib",
    "abc", "traceback", "inspect", "uuid", "threading",
)
PR_SET_DUMPABLE = 4
KILLED_EXIT = 70  # the child's own code for "something failed before the program could answer"


def address_space_bytes():
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def host_pid():
    """This process's PID as the peer sees it: in a PID namespace os.getpid() is 1, but /proc is the host's."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def make_non_dumpable():
    """
    prctl(PR_SET_DUMPABLE, 0): no process of the same uid (the tasks this zygote forks) may open its
    /proc/PID/mem or trace it. Forked children inherit it. Before the hook is armed, since tasks may
    not use ctypes; the module is dropped again afterwards. False when this interpreter has no ctypes.
    """
    try:
        import ctypes
    except ImportError:
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def preload():
    for name in PRELOADED_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass


def reap_leftovers(own_pid, spare):
    """Kills every process of this PID namespace but PID 1 (the launcher), the zygote and `spare` (a
    runner that may serve again): what a task forked dies with it. Returns how many there were, once
    they are gone (or zombies awaiting PID 1), at most after a second: the peer freezes the sandbox
    after the reply, and a process frozen before its SIGKILL took effect would live on, holding its
    memory, until the next thaw."""
    deadline = time.monotonic() + 1.0
    found = 0
    while True:
        alive = [pid for pid in other_pids(own_pid) if pid != spare and not is_zombie(pid)]
        if not alive or time.monotonic() > deadline:
            return found
        found = found or len(alive)
        for pid in alive:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.002)


def other_pids(own_pid):
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [int(name) for name in names if name.isdigit() and name != "1" and int(name) != own_pid]


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            text = stat.read()
        return text[text.rindex(b")") + 2:text.rindex(b")") + 3] == b"Z"
    except (OSError, ValueError):
        return True  # gone


def frame(header, body=b""):
    head = JSON_DUMPS(header).encode("utf-8")
    return struct.pack("<ii", 4 + len(head) + len(body), len(head)) + head + body


# What a runner tells the zygote in front of each reply (one byte): it still looks like a fresh
# interpreter, it does not, or it ran out of memory.
CLEAN, DIRTY, EXHAUSTED, READY = b"C", b"D", b"O", b"R"
FORGED = b"F"  # not a runner's: the zygote's mark for bytes a task wrote to the runner's pipe itself


def read_exact(fd, count):
    """count bytes from a raw descriptor (no file objects: opening one is an audited event in a task's process), or None at EOF."""
    parts, got = [], 0
    while got < count:
        chunk = os.read(fd, count - got)
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class Snapshot:
    """
    The interpreter state a task can change from Python and a later task could see: every loaded
    module's namespace (builtins included) by identity, which modules are loaded, the import
    machinery's lists, signal handlers, interval timers and interpreter settings. Taken in a fresh
    runner before its first task, compared after each task (~50 us); any difference retires the runner.
    Threads, processes and descriptors a task leaves are checked by the zygote from /proc, out of the
    task's reach.
    """

    def __init__(self):
        self.is_ = operator.is_
        self.signal = signal
        self.gc = gc
        self.modules = sys.modules
        self.module_names = tuple(sys.modules)
        self.module_objects = tuple(sys.modules.values())
        self.namespaces = tuple((m.__dict__, len(m.__dict__), tuple(m.__dict__.values()))
                                for m in self.module_objects if isinstance(getattr(m, "__dict__", None), dict))
        self.lists = tuple((l, tuple(l)) for l in (sys.path, sys.meta_path, sys.path_hooks))
        self.signals = tuple(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP))
        self.handlers = tuple(signal.getsignal(s) for s in self.signals)
        self.settings = self.current_settings()
        # Descriptors: a task's process may not read its own /proc/PID/fd (the hook), and the zygote may
        # not either when the runner is non-dumpable, so one poll() over every possible descriptor with
        # no events asked tells them apart: a closed one answers POLLNVAL, an open one stays silent.
        self.poller = select.poll()
        for fd in range(min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)):
            self.poller.register(fd, 0)
        self.descriptors = self.poller.poll(0)

    def current_settings(self):
        digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
        return (sys.getrecursionlimit(), sys.getswitchinterval(), digits, self.gc.isenabled(), self.gc.get_threshold(),
                sys.getdefaultencoding(), sys.stdout, sys.stderr, sys.stdin, sys.excepthook, sys.displayhook)

    def unchanged(self):
        is_ = self.is_
        if len(self.modules) != len(self.module_names) or not all(map(is_, self.modules.values(), self.module_objects)):
            return False
        for namespace, length, values in self.namespaces:
            if len(namespace) != length or not all(map(is_, namespace.values(), values)):
                return False
        for current, saved in self.lists:
            if len(current) != len(saved) or not all(map(is_, current, saved)):
                return False
        signal = self.signal
        if not all(map(is_, map(signal.getsignal, self.signals), self.handlers)):
            return False
        if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0) or signal.getitimer(signal.ITIMER_VIRTUAL) != (0.0, 0.0) \
                or signal.getitimer(signal.ITIMER_PROF) != (0.0, 0.0):
            return False
        return self.settings == self.current_settings() and self.poller.poll(0) == self.descriptors


def runner_main(protocol_fds, go, requests, answers, heap_limit, reusable):
    """
    A task process: never returns. It runs its zygote's requests one after another, each in a fresh
    namespace, for as long as the interpreter stays as the zygote left it (see Snapshot), else
    (or when not reusable) for one request; replies go to the zygote through `answers`, each behind a
    byte saying whether this process may serve the next one.
    """
    status = 0
    try:
        for fd in protocol_fds:
            os.close(fd)
        os.read(go, 1)  # the zygote has set this process's limits
        os.close(go)
        snapshot = Snapshot() if reusable else None
        # Ready: the zygote counts this process's descriptors from here on.
        os.write(answers, READY)
        codes = {}
        while True:
            prefix = read_exact(requests, 4)
            if prefix is None:
                break
            (length,) = struct.unpack("<i", prefix)
            payload = read_exact(requests, length)
            (header_length,) = struct.unpack("<i", payload[:4])
            request = JSON_LOADS(payload[4:4 + header_length].decode("utf-8"))
            key = request.get("Hash", "")
            verdict = CLEAN
            try:
                if length > 4 + header_length:
                    # The program is compiled here, in the task's own process: a text that exhausts the
                    # parser (deep nesting, huge literals) costs this task, never the zygote.
                    codes[key] = compile_program(payload[4 + header_length:].decode("utf-8", "replace"))
                if key not in codes:
                    header, data = reply(CRASHED, "Crashed: the task's process does not hold program %s" % key)
                else:
                    code, error = codes[key]
                    header, data = reply(COMPILE_ERROR, error) if code is None else run(code, request)
            except MemoryError:
                header, data = reply(OUT_OF_MEMORY, "OutOfMemory: the program exceeded the worker's memory limit of %d MiB" % (heap_limit >> 20))
                verdict = EXHAUSTED
            if verdict == CLEAN and (snapshot is None or not snapshot.unchanged()):
                verdict = DIRTY
            header["Sequence"] = request.get("Sequence", 0)
            view = memoryview(verdict + frame(header, data))
            while view:
                view = view[os.write(answers, view):]
            if verdict != CLEAN:
                status = 3 if verdict == EXHAUSTED else 0
                break
    except MemoryError:
        status = KILLED_EXIT
    except BaseException:
        status = KILLED_EXIT
    os._exit(status)


def proc_stat(pid):
    """(CPU seconds, address space bytes) of a process from /proc/PID/stat; None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            text = stat.read()
        fields = text[text.rindex(b")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[20])
    except (OSError, ValueError, IndexError):
        return None


def count_entries(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return -1


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Runner:
    """
    The zygote's forked task process and the pipes to it. Behind the kernel wall (`reusable`) a runner
    serves the zygote's tasks one after another while it stays clean: after each task the runner checks
    its interpreter (Snapshot) and the zygote checks from outside what the task cannot hide or forge:
    one thread, the descriptors it started with, no other process in the sandbox, CPU time and address
    space within their per-task backstops. Anything else, and the runner is killed and the next task
    gets a fresh fork. A fork costs ~2 ms of CPU here (zygote and child); reuse makes a trivial task
    cost tens of microseconds. Runners only ever serve one zygote, and a zygote one submitter.
    """

    def __init__(self, protocol_fds, heap_limit, cpu_seconds, as_hard, reusable):
        go_read, go_write = os.pipe()
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        base = address_space_bytes() if heap_limit > 0 else 0
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.close(request_write)
            os.close(answer_read)
            runner_main(protocol_fds, go_read, request_read, answer_write, heap_limit, reusable)
        os.close(go_read)
        os.close(request_read)
        os.close(answer_write)
        self.pid, self.requests, self.answers = pid, request_write, answer_read
        self.programs = set()
        self.status = None
        self.reusable = reusable
        # A runner serves many tasks: it is retired once it has used half of its CPU backstop or
        # grown into half of its task share of address space, so every task still has the whole of each.
        self.cpu_retire = cpu_seconds
        self.as_retire = base + heap_limit // 2 if heap_limit > 0 else 0
        try:
            if heap_limit > 0:
                limit = min(base + heap_limit, as_hard) if as_hard != resource.RLIM_INFINITY else base + heap_limit
                resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
            if cpu_seconds > 0:
                backstop = 2 * cpu_seconds if reusable else cpu_seconds
                resource.prlimit(pid, resource.RLIMIT_CPU, (backstop, backstop))
            os.write(go_write, b"g")
        finally:
            os.close(go_write)
        self.threads = 1
        self.descriptors = -1
        self.ready = False

    def _await_ready(self):
        """The runner's first byte says it is set up: its descriptors now are the ones it must keep."""
        if not self.ready:
            self.ready = self._read(1, 1) == READY
            if self.ready and self.reusable:
                self.descriptors = count_entries("/proc/%d/fd" % self.pid)
        return self.ready

    def send(self, request, key, source):
        body = b"" if key in self.programs else source.encode("utf-8")
        self.programs.add(key)
        message = memoryview(frame(request, body))
        while message:
            message = message[os.write(self.requests, message):]

    def receive(self, limit):
        """(verdict byte, reply frame) or (None, why the runner died); the runner is dead or killed in the second case."""
        head = self._read(5, limit) if self._await_ready() else None
        if head is None:
            return None, self._death("the task's process failed before it could answer")
        if head[:1] not in (CLEAN, DIRTY, EXHAUSTED):
            # The task wrote to the runner's pipe itself. What it wrote goes to the peer as it is, which
            # judges it (a protocol violation) and ends this zygote: its pipe to the peer is spoilt.
            forged = head + self._drain(limit)
            self.kill()
            return FORGED, forged
        (length,) = struct.unpack("<i", head[1:5])
        if length < 4 or length > limit:
            self.kill()
            return None, "the task wrote more than a reply may hold"
        rest = self._read(length, limit)
        if rest is None:
            return None, self._death("the task's process failed before it could answer")
        return head[:1], head[1:5] + rest

    def _read(self, count, limit):
        """count bytes from the runner; None when it closed the pipe or died (a process it forked may still hold the pipe open)."""
        parts, got = [], 0
        while got < count:
            if select.select([self.answers], [], [], 0.05)[0]:
                chunk = os.read(self.answers, count - got)
                if not chunk:
                    return None
                parts.append(chunk)
                got += len(chunk)
            elif self.status is None:
                done, wait_status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.status = wait_status
            else:
                return None
        return b"".join(parts)

    def _drain(self, limit):
        """What is left in the pipe of a killed runner, at most limit bytes."""
        parts, got = [], 0
        while got < limit and select.select([self.answers], [], [], 0)[0]:
            chunk = os.read(self.answers, min(1 << 16, limit - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _death(self, fallback):
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        self.close()
        if os.WIFSIGNALED(self.status):
            return "the task's process was killed by signal %d" % os.WTERMSIG(self.status)
        code = os.WEXITSTATUS(self.status)
        if code == KILLED_EXIT:
            return fallback
        return "the task's process exited with code %d" % code

    def still_clean(self):
        """What the zygote sees from outside after a task: one thread, its own descriptors, CPU and memory backstops not half used."""
        if not self.reusable:
            return False
        if count_entries("/proc/%d/task" % self.pid) != self.threads or count_entries("/proc/%d/fd" % self.pid) != self.descriptors:
            return False
        stat = proc_stat(self.pid)
        if stat is None:
            return False
        cpu, address_space = stat
        return (self.cpu_retire <= 0 or cpu < self.cpu_retire) and (self.as_retire <= 0 or address_space < self.as_retire)

    def kill(self):
        if self.status is None:
            # Not once it was waited for: its PID may belong to another process by now.
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
            _, self.status = os.waitpid(self.pid, 0)
        self.close()

    def close(self):
        for fd in (self.requests, self.answers):
            try:
                os.close(fd)
            except OSError:
                pass
        self.requests = self.answers = -1


def serve(protocol, protocol_fds, heap_limit, cpu_seconds, reap, zygote_pid):
    programs = {}
    as_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    runner = None
    while True:
        if runner is None:
            # Forked ahead, while the peer has nothing for this zygote: a task finds its process ready.
            runner = Runner(protocol_fds, heap_limit, cpu_seconds, as_hard, reusable=reap)
        message = protocol.read()
        if message is None:
            runner.kill()
            return 0
        request, body = message
        sequence = request.get("Sequence", 0)
        key = request.get("Hash", "")
        if body:
            # Kept as text: the zygote never parses a program (see runner_main).
            programs[key] = body.decode("utf-8", "replace")
        if key not in programs:
            header, data = reply(CRASHED, "Crashed: the worker does not hold program %s" % key)
            header["Sequence"] = sequence
            protocol.write(header, data)
            continue
        runner.send(request, key, programs[key])
        limit = int(request.get("MaxResultBytes", 0)) + int(request.get("MaxOutputBytes", 0)) + 4 * MAX_ERROR_CHARS + 4096
        verdict, answer = runner.receive(min(limit, MAX_FRAME_BYTES))
        if verdict is None:
            runner = None
        else:
            # Whatever the task forked dies now; a task that forked anything leaves no clean runner.
            left = reap_leftovers(zygote_pid, runner.pid) if reap else 0
            if verdict != CLEAN or left or not runner.still_clean():
                runner.kill()
                runner = None
        if reap and runner is None:
            reap_leftovers(zygote_pid, None)
        if verdict is None:
            header, data = reply(CRASHED, "Crashed: %s" % answer)
            header["Sequence"] = sequence
            protocol.write(header, data)
            continue
        protocol.out.write(answer)
        protocol.out.flush()
        if verdict == FORGED:
            return 4
        if verdict == EXHAUSTED:
            return 3  # out of memory: as before the zygote, the peer starts a fresh one


def main():
    heap_limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    cpu_seconds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0
    reap = "--reap" in sys.argv[1:]
    audit_hook = "--no-audit-hook" not in sys.argv[1:]

    # The protocol gets private copies of the pipes; fd 0 and 1 become /dev/null so that a program
    # can neither read requests nor corrupt replies by writing to standard output. Forked tasks
    # close the copies too.
    inp = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sys.stdin = io.StringIO("")
    protocol = Protocol(inp, out)
    pid = host_pid()
    os.environ.clear()  # the peer passes none; nothing of its environment is a program's business
    try:
        # A group of its own: without a freezer the peer pauses the zygote and its task together.
        os.setpgid(0, 0)
    except OSError:
        pass
    make_non_dumpable()
    preload()

    readable_roots = sorted({os.path.realpath(p) for p in sys.path if p and os.path.isabs(p)})
    if audit_hook:
        neuter_unaudited_functions()
        seal_builtin_modules()
    for name in DENIED_MODULES:
        # Start-up may have loaded one (site imports pwd when there is no HOME; ctypes above): a
        # program's import must reach the hook, which sees only modules not loaded yet.
        sys.modules.pop(name, None)
    for name in [n for n in sys.modules if n.startswith("ctypes.")]:
        sys.modules.pop(name, None)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    if heap_limit > 0:
        # The program's share on top of what the interpreter already maps; the hard limit leaves the
        # zygote room to relay a large reply, and each task gets its share from there.
        base = address_space_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (base + heap_limit, base + 2 * heap_limit))
    gc.collect()
    # Objects the zygote holds are never collected in a task, so forks share their pages.
    gc.freeze()
    zygote_pid = os.getpid()
    if audit_hook:
        sys.addaudithook(make_audit_hook(readable_roots, zygote_pid))

    protocol.write({"ProcessId": pid})
    return serve(protocol, (inp.fileno(), out.fileno()), heap_limit, cpu_seconds, reap, zygote_pid)


if __name__ == "__main__":
    sys.exit(main())
