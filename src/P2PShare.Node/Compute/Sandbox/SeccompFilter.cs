using System.Runtime.InteropServices;

namespace P2PShare.Compute;

/// <summary>
/// The seccomp program every sandboxed worker runs under, compiled to BPF by libseccomp (the Debian
/// package libseccomp2) through P/Invoke and handed to bubblewrap as <c>--seccomp FD</c>. It refuses
/// system calls a task never needs and that widen the kernel surface a task can reach: debugging other
/// processes, mounting, new namespaces, kernel keyrings, BPF, io_uring (whose operations seccomp cannot
/// see), module and kexec loading, and every socket family but <c>AF_UNIX</c>. Everything else is allowed:
/// the namespaces, the read-only file system, the unprivileged uid and the limits are the rest of the wall.
/// System calls of another architecture (x32, i386) kill the process: libseccomp's default for a filter
/// built for the native architecture only.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class SeccompFilter
{
    private const string Library = "libseccomp.so.2";
    private const uint ActAllow = 0x7fff0000;
    private const uint ActErrnoBase = 0x00050000;
    private const int Eperm = 1;
    private const int Enosys = 38;
    private const int Eafnosupport = 97;
    private const ulong AfUnix = 1;
    private const ulong Tiocsti = 0x5412;
    private const ulong FileTypeMask = 0xF000; // S_IFMT
    private const ulong CharDevice = 0x2000; // S_IFCHR
    private const ulong BlockDevice = 0x6000; // S_IFBLK
    private const ulong LowWord = 0xFFFF_FFFF;
    private const ulong PersonalityQuery = 0xFFFF_FFFF;

    /// <summary>Every CLONE_NEW* flag: a task may start threads and processes, never namespaces.</summary>
    private static readonly ulong[] NamespaceFlags =
    [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
        0x0000_0080, // CLONE_NEWTIME
    ];

    /// <summary>Refused outright with EPERM.</summary>
    internal static readonly string[] Refused =
    [
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
        "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
        "unshare", "setns",
        "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init", "quotactl", "vhangup", "acct",
        "keyctl", "add_key", "request_key",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        "swapon", "swapoff", "reboot", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
        "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "modify_ldt",
    ];

    /// <summary>Writes the compiled filter to <paramref name="path"/> (readable by its owner only).</summary>
    /// <exception cref="InvalidOperationException">libseccomp is missing or refused a rule; the message says which.</exception>
    public static void WriteTo(string path)
    {
        IntPtr context;
        try
        {
            context = seccomp_init(ActAllow);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException($"libseccomp is not installed ({Library}; Debian: apt-get install libseccomp2)", e);
        }

        if (context == IntPtr.Zero) throw new InvalidOperationException("libseccomp could not start a filter (seccomp_init failed)");
        try
        {
            foreach (var name in Refused) Add(context, name, Errno(Eperm));
            // clone3 passes its flags in memory seccomp cannot read: make it look absent, and libc falls
            // back to clone, whose flags the rules below can see.
            Add(context, "clone3", Errno(Enosys));
            foreach (var flag in NamespaceFlags) Add(context, "clone", Errno(Eperm), Masked(0, flag, flag));
            Add(context, "socket", Errno(Eafnosupport), Compare(0, CompareOp.NotEqual, AfUnix));
            Add(context, "socketpair", Errno(Eafnosupport), Compare(0, CompareOp.NotEqual, AfUnix));
            // The kernel reads ioctl's request and mknod's mode as 32-bit: compare only those bits, so
            // garbage in the upper half cannot slip a request past an equality test.
            Add(context, "ioctl", Errno(Eperm), Masked(1, LowWord, Tiocsti));
            foreach (var type in new[] { CharDevice, BlockDevice })
            {
                Add(context, "mknod", Errno(Eperm), Masked(1, FileTypeMask, type));
                Add(context, "mknodat", Errno(Eperm), Masked(2, FileTypeMask, type));
            }

            // Runtimes may ask for the current personality; only changing it is refused.
            Add(context, "personality", Errno(Eperm), Compare(0, CompareOp.NotEqual, PersonalityQuery));

            using var file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            var rc = seccomp_export_bpf(context, (int)file.SafeFileHandle.DangerousGetHandle());
            if (rc != 0) throw new InvalidOperationException($"libseccomp could not export the filter (error {-rc})");
        }
        finally
        {
            seccomp_release(context);
        }
    }

    private static uint Errno(int errno) => ActErrnoBase | (uint)(errno & 0xFFFF);

    private static ArgCompare Compare(uint argument, CompareOp op, ulong value) => new(argument, op, value, 0);

    // (argument & mask) == value
    private static ArgCompare Masked(uint argument, ulong mask, ulong value) => new(argument, CompareOp.MaskedEqual, mask, value);

    private static void Add(IntPtr context, string syscall, uint action, params ArgCompare[] comparisons)
    {
        var number = seccomp_syscall_resolve_name(syscall);
        // Unknown to this libseccomp: nothing to refuse (a task cannot call what it has no number for).
        if (number == -1) return;
        var rc = seccomp_rule_add_array(context, action, number, (uint)comparisons.Length, comparisons);
        if (rc != 0) throw new InvalidOperationException($"libseccomp refused the rule for {syscall} (error {-rc})");
    }

    private enum CompareOp
    {
        NotEqual = 1,
        MaskedEqual = 7,
    }

    // struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; scmp_datum_t datum_a; scmp_datum_t datum_b; }
    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct ArgCompare(uint Argument, CompareOp Op, ulong DatumA, ulong DatumB);

    [DllImport(Library)]
    private static extern IntPtr seccomp_init(uint defaultAction);

    [DllImport(Library)]
    private static extern void seccomp_release(IntPtr context);

    [DllImport(Library, CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int seccomp_syscall_resolve_name(string name);

    [DllImport(Library)]
    private static extern int seccomp_rule_add_array(IntPtr context, uint action, int syscall, uint count, ArgCompare[] comparisons);

    [DllImport(Library)]
    private static extern int seccomp_export_bpf(IntPtr context, int fd);
}
