using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using P2PShare.Memory;

namespace P2PShare.Resp;

/// <summary>
/// The commands: the memory store's operations in Redis' words and replies, plus what common clients
/// (StackExchange.Redis, redis-cli, redis-benchmark) send while connecting. Every refusal of the
/// store is the same one line <c>p2pshare mem</c> prints, after the Redis error code.
/// </summary>
internal sealed partial class RespConnection
{
    /// <summary>The Redis version clients are told: the command set and replies follow Redis 7's.</summary>
    internal const string CompatibleRedisVersion = "7.2.0";

    private byte[]? _clientName;

    private MemoryStore Store => _server.Store;

    private void Execute()
    {
        var name = Arg(0);
        switch (name.Length)
        {
            case 3:
                if (Is(name, "GET"u8)) { Get(); return; }
                if (Is(name, "SET"u8)) { Set(); return; }
                if (Is(name, "DEL"u8)) { Delete(); return; }
                if (Is(name, "TTL"u8)) { TimeToLive(milliseconds: false); return; }
                break;
            case 4:
                if (Is(name, "MGET"u8)) { MultiGet(); return; }
                if (Is(name, "MSET"u8)) { MultiSet(); return; }
                if (Is(name, "PING"u8)) { Ping(); return; }
                if (Is(name, "ECHO"u8)) { Echo(); return; }
                if (Is(name, "PTTL"u8)) { TimeToLive(milliseconds: true); return; }
                if (Is(name, "KEYS"u8)) { Keys(); return; }
                if (Is(name, "SCAN"u8)) { Scan(); return; }
                if (Is(name, "INFO"u8)) { Info(); return; }
                if (Is(name, "QUIT"u8)) { Quit(); return; }
                if (Is(name, "TYPE"u8)) { TypeOf(); return; }
                if (Is(name, "AUTH"u8)) { _out.WriteError("ERR AUTH is not needed: this endpoint has no password (it listens on Resp:Address only)"); return; }
                break;
            case 5:
                if (Is(name, "HELLO"u8)) { Hello(); return; }
                if (Is(name, "SETEX"u8)) { SetWithExpiry(milliseconds: false); return; }
                if (Is(name, "SETNX"u8)) { SetIfAbsent(); return; }
                break;
            case 6:
                if (Is(name, "EXISTS"u8)) { Exists(); return; }
                if (Is(name, "EXPIRE"u8)) { Expire(milliseconds: false); return; }
                if (Is(name, "DBSIZE"u8)) { DbSize(); return; }
                if (Is(name, "SELECT"u8)) { Select(); return; }
                if (Is(name, "CLIENT"u8)) { Client(); return; }
                if (Is(name, "CONFIG"u8)) { Config(); return; }
                if (Is(name, "UNLINK"u8)) { Delete(); return; }
                if (Is(name, "PSETEX"u8)) { SetWithExpiry(milliseconds: true); return; }
                break;
            case 7:
                if (Is(name, "PEXPIRE"u8)) { Expire(milliseconds: true); return; }
                if (Is(name, "PERSIST"u8)) { Persist(); return; }
                if (Is(name, "COMMAND"u8)) { Command(); return; }
                break;
        }

        UnknownCommand();
    }

    // ---- keys and values ----

    private void Get()
    {
        if (!Arity(2, 2)) return;
        if (!TryKey(1, out var key)) return;
        if (Store.TryGet(key, out var value)) _out.WriteBulk(value);
        else _out.WriteNull();
    }

    private void Set()
    {
        if (!Arity(3, int.MaxValue)) return;
        TimeSpan? ttl = null;
        var condition = SetCondition.Always;
        var keepTtl = false;
        for (var i = 3; i < _argc; i++)
        {
            var option = Arg(i);
            if (Is(option, "NX"u8) && condition == SetCondition.Always)
            {
                condition = SetCondition.IfAbsent;
            }
            else if (Is(option, "XX"u8) && condition == SetCondition.Always)
            {
                condition = SetCondition.IfExists;
            }
            else if (Is(option, "KEEPTTL"u8) && ttl is null && !keepTtl)
            {
                keepTtl = true;
            }
            else if ((Is(option, "EX"u8) || Is(option, "PX"u8)) && ttl is null && !keepTtl && i + 1 < _argc)
            {
                if (!TryInteger(i + 1, out var amount)) return;
                if (!TryExpiry(amount, milliseconds: option[0] is (byte)'P' or (byte)'p', out var life) || life <= TimeSpan.Zero)
                {
                    _out.WriteError("ERR invalid expire time in 'set' command");
                    return;
                }

                ttl = life;
                i++;
            }
            else
            {
                _out.WriteError("ERR syntax error");
                return;
            }
        }

        if (!TryKey(1, out var key)) return;
        var result = Store.TrySet(key, Arg(2).ToArray(), ttl, condition, keepTtl);
        switch (result.Status)
        {
            case WriteStatus.Stored:
                _out.WriteOk();
                return;
            case WriteStatus.ConditionNotMet:
                _out.WriteNull();
                return;
            case WriteStatus.InvalidTtl:
                _out.WriteError("ERR invalid expire time in 'set' command");
                return;
            default:
                WriteStoreError(result, key);
                return;
        }
    }

    /// <summary>SETEX / PSETEX: the older forms of SET ... EX / PX that clients still send.</summary>
    private void SetWithExpiry(bool milliseconds)
    {
        if (!Arity(4, 4) || !TryInteger(2, out var amount)) return;
        if (!TryExpiry(amount, milliseconds, out var ttl) || ttl <= TimeSpan.Zero)
        {
            _out.WriteError($"ERR invalid expire time in '{(milliseconds ? "psetex" : "setex")}' command");
            return;
        }

        if (!TryKey(1, out var key)) return;
        var result = Store.TrySet(key, Arg(3).ToArray(), ttl);
        if (result.Status == WriteStatus.Stored) _out.WriteOk();
        else WriteStoreError(result, key);
    }

    /// <summary>SETNX: SET ... NX answering 1 or 0.</summary>
    private void SetIfAbsent()
    {
        if (!Arity(3, 3) || !TryKey(1, out var key)) return;
        var result = Store.TrySet(key, Arg(2).ToArray(), null, SetCondition.IfAbsent);
        if (result.Status is WriteStatus.Stored or WriteStatus.ConditionNotMet) _out.WriteInteger(result.Status == WriteStatus.Stored ? 1 : 0);
        else WriteStoreError(result, key);
    }

    private void MultiGet()
    {
        if (!Arity(2, int.MaxValue)) return;
        // Every key is checked first, so a bad key fails the command instead of half a reply.
        for (var i = 1; i < _argc; i++)
        {
            if (!TryKey(i, out _)) return;
        }

        _out.WriteArrayHeader(_argc - 1);
        for (var i = 1; i < _argc; i++)
        {
            TryKey(i, out var key, reply: false);
            if (Store.TryGet(key, out var value)) _out.WriteBulk(value);
            else _out.WriteNull();
        }
    }

    private void MultiSet()
    {
        if (_argc < 3 || _argc % 2 == 0)
        {
            WrongArity();
            return;
        }

        var pairs = new KeyValuePair<string, byte[]>[(_argc - 1) / 2];
        for (var i = 1; i < _argc; i += 2)
        {
            if (!TryKey(i, out var key)) return;
            pairs[i / 2] = new(key.ToString(), Arg(i + 1).ToArray());
        }

        var result = Store.TrySetMany(pairs, ttl: null);
        if (result.Status == WriteStatus.Stored) _out.WriteOk();
        else WriteStoreError(result, result.FailedKey ?? "");
    }

    private void Delete()
    {
        if (!Arity(2, int.MaxValue)) return;
        var removed = 0;
        for (var i = 1; i < _argc; i++)
        {
            if (!TryKey(i, out var key)) return;
            if (Store.Remove(key)) removed++;
        }

        _out.WriteInteger(removed);
    }

    private void Exists()
    {
        if (!Arity(2, int.MaxValue)) return;
        var found = 0;
        for (var i = 1; i < _argc; i++)
        {
            if (!TryKey(i, out var key)) return;
            if (Store.Contains(key)) found++;
        }

        _out.WriteInteger(found);
    }

    private void TypeOf()
    {
        if (!Arity(2, 2) || !TryKey(1, out var key)) return;
        _out.WriteRaw(Store.Contains(key) ? "+string\r\n"u8 : "+none\r\n"u8);
    }

    private void Expire(bool milliseconds)
    {
        if (!Arity(3, 3)) return;
        if (!TryInteger(2, out var amount)) return;
        if (!TryKey(1, out var key)) return;
        if (!TryExpiry(amount, milliseconds, out var ttl))
        {
            _out.WriteError($"ERR invalid expire time in '{(milliseconds ? "pexpire" : "expire")}' command");
            return;
        }

        _out.WriteInteger(Store.TrySetExpiry(key, ttl) ? 1 : 0);
    }

    private void Persist()
    {
        if (!Arity(2, 2) || !TryKey(1, out var key)) return;
        _out.WriteInteger(Store.TrySetExpiry(key, null) ? 1 : 0);
    }

    private void TimeToLive(bool milliseconds)
    {
        if (!Arity(2, 2) || !TryKey(1, out var key)) return;
        if (!Store.TryGetTimeToLive(key, out var ttl)) _out.WriteInteger(-2);
        else if (ttl is not { } left) _out.WriteInteger(-1);
        else _out.WriteInteger(milliseconds ? (long)Math.Ceiling(left.TotalMilliseconds) : (long)Math.Round(left.TotalSeconds, MidpointRounding.AwayFromZero));
    }

    private void Keys()
    {
        if (!Arity(2, 2)) return;
        var pattern = Text(1);
        var keys = Store.Keys(pattern == "*" ? null : k => Glob.IsMatch(pattern, k));
        _out.WriteArrayHeader(keys.Count);
        foreach (var key in keys) _out.WriteBulk(key);
    }

    private void Scan()
    {
        if (!Arity(2, int.MaxValue)) return;
        if (!Utf8Parser.TryParse(Arg(1), out ulong cursor, out var used) || used != Arg(1).Length)
        {
            _out.WriteError("ERR invalid cursor");
            return;
        }

        var count = 10L;
        string? pattern = null;
        var anyType = true;
        for (var i = 2; i < _argc; i += 2)
        {
            if (i + 1 >= _argc)
            {
                _out.WriteError("ERR syntax error");
                return;
            }

            var option = Arg(i);
            if (Is(option, "COUNT"u8))
            {
                if (!TryInteger(i + 1, out count)) return;
                if (count < 1)
                {
                    _out.WriteError("ERR syntax error");
                    return;
                }
            }
            else if (Is(option, "MATCH"u8))
            {
                pattern = Text(i + 1);
            }
            else if (Is(option, "TYPE"u8))
            {
                anyType = Is(Arg(i + 1), "string"u8);
            }
            else
            {
                _out.WriteError("ERR syntax error");
                return;
            }
        }

        var keys = new List<string>();
        var next = Store.Scan(cursor, (int)Math.Min(count, 100_000), pattern is null or "*" ? null : k => Glob.IsMatch(pattern, k), keys);
        if (!anyType) keys.Clear();
        _out.WriteArrayHeader(2);
        _out.WriteBulk(next.ToString(CultureInfo.InvariantCulture));
        _out.WriteArrayHeader(keys.Count);
        foreach (var key in keys) _out.WriteBulk(key);
    }

    private void DbSize()
    {
        if (!Arity(1, 1)) return;
        _out.WriteInteger(Store.Usage.Keys);
    }

    // ---- connection ----

    private void Ping()
    {
        if (!Arity(1, 2)) return;
        if (_argc == 1) _out.WriteRaw("+PONG\r\n"u8);
        else _out.WriteBulk(Arg(1));
    }

    private void Echo()
    {
        if (!Arity(2, 2)) return;
        _out.WriteBulk(Arg(1));
    }

    private void Quit()
    {
        _out.WriteOk();
        _quit = true;
    }

    private void Select()
    {
        if (!Arity(2, 2) || !TryInteger(1, out var db)) return;
        if (db == 0) _out.WriteOk();
        else _out.WriteError("ERR DB index is out of range (this endpoint has one database, 0: the peer's memory)");
    }

    private void Hello()
    {
        var i = 1;
        if (_argc > 1)
        {
            if (!Utf8Parser.TryParse(Arg(1), out long version, out var used) || used != Arg(1).Length)
            {
                _out.WriteError("ERR Protocol version is not an integer or out of range");
                return;
            }

            if (version != 2)
            {
                _out.WriteError("NOPROTO unsupported protocol version (this endpoint speaks RESP2)");
                return;
            }

            i = 2;
        }

        for (; i < _argc; i++)
        {
            if (Is(Arg(i), "SETNAME"u8) && i + 1 < _argc)
            {
                if (!TrySetName(i + 1)) return;
                i++;
            }
            else if (Is(Arg(i), "AUTH"u8))
            {
                _out.WriteError("ERR AUTH is not needed: this endpoint has no password (it listens on Resp:Address only)");
                return;
            }
            else
            {
                _out.WriteError($"ERR Syntax error in HELLO option '{Text(i)}'");
                return;
            }
        }

        _out.WriteArrayHeader(14);
        _out.WriteBulk("server"u8);
        _out.WriteBulk("redis"u8);
        _out.WriteBulk("version"u8);
        _out.WriteBulk(CompatibleRedisVersion);
        _out.WriteBulk("proto"u8);
        _out.WriteInteger(2);
        _out.WriteBulk("id"u8);
        _out.WriteInteger(Id);
        _out.WriteBulk("mode"u8);
        _out.WriteBulk("standalone"u8);
        _out.WriteBulk("role"u8);
        _out.WriteBulk("master"u8);
        _out.WriteBulk("modules"u8);
        _out.WriteArrayHeader(0);
    }

    private void Client()
    {
        if (!Arity(2, int.MaxValue)) return;
        var sub = Arg(1);
        if (Is(sub, "SETNAME"u8))
        {
            if (_argc != 3) WrongArity("client|setname");
            else if (TrySetName(2)) _out.WriteOk();
        }
        else if (Is(sub, "GETNAME"u8))
        {
            if (_clientName is null) _out.WriteNull();
            else _out.WriteBulk(_clientName.AsSpan());
        }
        else if (Is(sub, "ID"u8))
        {
            _out.WriteInteger(Id);
        }
        else if (Is(sub, "SETINFO"u8))
        {
            // Clients announce their library name and version; nothing here depends on it.
            _out.WriteOk();
        }
        else
        {
            _out.WriteError($"ERR unknown subcommand '{Text(1)}'. This endpoint knows CLIENT SETNAME, GETNAME, ID and SETINFO.");
        }
    }

    private bool TrySetName(int i)
    {
        var name = Arg(i);
        foreach (var b in name)
        {
            if (b is < 0x21 or > 0x7e)
            {
                _out.WriteError("ERR Client names cannot contain spaces, newlines or special characters.");
                return false;
            }
        }

        _clientName = name.IsEmpty ? null : name.ToArray();
        return true;
    }

    private void Command()
    {
        // Clients ask for command tables (redis-cli for hints) and cope with an empty one.
        if (_argc >= 2 && Is(Arg(1), "COUNT"u8))
        {
            _out.WriteInteger(0);
        }
        else if (_argc >= 2 && Is(Arg(1), "INFO"u8))
        {
            _out.WriteArrayHeader(_argc - 2);
            for (var i = 2; i < _argc; i++) _out.WriteRaw("*-1\r\n"u8);
        }
        else
        {
            _out.WriteArrayHeader(0);
        }
    }

    private void Config()
    {
        if (!Arity(2, int.MaxValue)) return;
        if (!Is(Arg(1), "GET"u8))
        {
            _out.WriteError($"ERR CONFIG {Text(1).ToUpperInvariant()} is not supported: this endpoint is configured through the peer's Resp and Memory settings");
            return;
        }

        if (_argc < 3)
        {
            WrongArity("config|get");
            return;
        }

        string[][] settings =
        [
            ["maxmemory", Store.QuotaBytes.ToString(CultureInfo.InvariantCulture)],
            ["maxmemory-policy", "noeviction"],
            ["databases", "1"],
            ["maxclients", _limits.MaxConnections.ToString(CultureInfo.InvariantCulture)],
            ["timeout", ((long)_limits.IdleTimeout.TotalSeconds).ToString(CultureInfo.InvariantCulture)],
            ["proto-max-bulk-len", _limits.MaxBulkBytes.ToString(CultureInfo.InvariantCulture)],
            ["save", ""],
            ["appendonly", "no"],
            ["slave-read-only", "yes"],
            ["replica-read-only", "yes"],
            ["cluster-enabled", "no"],
        ];
        var matches = new List<string[]>();
        foreach (var setting in settings)
        {
            for (var i = 2; i < _argc; i++)
            {
                if (Glob.IsMatch(Text(i), setting[0], ignoreCase: true))
                {
                    matches.Add(setting);
                    break;
                }
            }
        }

        _out.WriteArrayHeader(matches.Count * 2);
        foreach (var setting in matches)
        {
            _out.WriteBulk(setting[0]);
            _out.WriteBulk(setting[1]);
        }
    }

    private void Info()
    {
        var (used, keys) = Store.Usage;
        var quota = Store.QuotaBytes;
        var uptime = Stopwatch.GetElapsedTime(_server.StartedTimestamp);
        var sections = new (string Name, string Body)[]
        {
            ("server", Lines(
                $"redis_version:{CompatibleRedisVersion}",
                "redis_mode:standalone",
                "p2pshare:memory store of this peer (RESP2 endpoint)",
                $"os:{Environment.OSVersion.Platform}",
                $"arch_bits:{IntPtr.Size * 8}",
                $"process_id:{Environment.ProcessId}",
                $"tcp_port:{_server.LocalEndpoint.Port}",
                $"uptime_in_seconds:{(long)uptime.TotalSeconds}",
                $"uptime_in_days:{(long)uptime.TotalDays}")),
            ("clients", Lines(
                $"connected_clients:{_server.ConnectionCount}",
                $"maxclients:{_limits.MaxConnections}")),
            ("memory", Lines(
                $"used_memory:{used}",
                $"used_memory_human:{Bytes.Format(used)}",
                $"maxmemory:{quota}",
                $"maxmemory_human:{Bytes.Format(quota)}",
                "maxmemory_policy:noeviction",
                $"p2pshare_max_value_bytes:{Store.MaxValueBytes}",
                $"p2pshare_max_key_bytes:{Store.MaxKeyBytes}")),
            ("persistence", Lines("loading:0", "rdb_bgsave_in_progress:0", "aof_enabled:0")),
            ("stats", Lines(
                $"total_connections_received:{_server.ConnectionsReceived}",
                $"total_commands_processed:{_server.CommandsProcessed}",
                $"p2pshare_buffered_request_bytes:{_server.BufferedBytes}")),
            ("replication", Lines("role:master", "connected_slaves:0")),
            ("keyspace", keys > 0 ? Lines($"db0:keys={keys},expires={Store.ExpiringKeys},avg_ttl=0") : ""),
        };

        var wanted = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 1; i < _argc; i++) wanted.Add(Text(i));
        var all = wanted.Count == 0 || wanted.Contains("all") || wanted.Contains("everything") || wanted.Contains("default");
        var text = new StringBuilder();
        foreach (var (name, body) in sections)
        {
            if (!all && !wanted.Contains(name)) continue;
            if (text.Length > 0) text.Append("\r\n");
            text.Append("# ").Append(char.ToUpperInvariant(name[0])).Append(name.AsSpan(1)).Append("\r\n").Append(body);
        }

        _out.WriteBulk(text.ToString());

        static string Lines(params string[] lines) => string.Concat(lines.Select(l => l + "\r\n"));
    }

    // ---- helpers ----

    private static bool Is(ReadOnlySpan<byte> arg, ReadOnlySpan<byte> upper) => System.Text.Ascii.EqualsIgnoreCase(arg, upper);

    private bool Arity(int min, int max)
    {
        if (_argc >= min && _argc <= max) return true;
        WrongArity();
        return false;
    }

    private void WrongArity(string? name = null) =>
        _out.WriteError($"ERR wrong number of arguments for '{name ?? Text(0).ToLowerInvariant()}' command");

    private void UnknownCommand()
    {
        var text = new StringBuilder("ERR unknown command '").Append(Shown(0)).Append("', with args beginning with:");
        for (var i = 1; i < Math.Min(_argc, 4); i++) text.Append(" '").Append(Shown(i)).Append('\'');
        _out.WriteError(text.ToString());
    }

    /// <summary>
    /// The key in argument <paramref name="i"/> as characters (in a buffer reused per connection).
    /// A key the store would refuse gets the error line <c>p2pshare mem</c> shows; false then.
    /// </summary>
    private bool TryKey(int i, out ReadOnlySpan<char> key, bool reply = true)
    {
        var bytes = Arg(i);
        key = default;
        string? problem = null;
        if (bytes.Length > _keyChars.Length)
        {
            problem = $"longer than {_keyChars.Length} bytes";
        }
        else if (Utf8.ToUtf16(bytes, _keyChars, out _, out var chars, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
        {
            problem = "keys are UTF-8 text (the same keys p2pshare mem names), and this is not valid UTF-8";
        }
        else
        {
            key = _keyChars.AsSpan(0, chars);
            problem = Names.KeyProblem(key, bytes.Length, Store.MaxKeyBytes);
        }

        if (problem is null) return true;
        if (reply) _out.WriteError("ERR " + new InvalidNameException("key", Encoding.UTF8.GetString(bytes), problem).Message);
        return false;
    }

    private bool TryInteger(int i, out long value)
    {
        var arg = Arg(i);
        if (Utf8Parser.TryParse(arg, out value, out var used) && used == arg.Length && arg.Length > 0) return true;
        _out.WriteError("ERR value is not an integer or out of range");
        return false;
    }

    /// <summary>Redis' expiry amounts as a span; false when it cannot be represented.</summary>
    private static bool TryExpiry(long amount, bool milliseconds, out TimeSpan ttl)
    {
        ttl = default;
        var max = milliseconds ? (long)TimeSpan.MaxValue.TotalMilliseconds : (long)TimeSpan.MaxValue.TotalSeconds;
        if (amount > max || amount < -max) return false;
        ttl = milliseconds ? TimeSpan.FromMilliseconds(amount) : TimeSpan.FromSeconds(amount);
        return true;
    }

    private void WriteStoreError(WriteResult result, ReadOnlySpan<char> key)
    {
        var error = result.ToException(key.ToString());
        _out.WriteError((result.Status == WriteStatus.OverQuota ? "OOM " : "ERR ") + error.Message);
    }

    private string Text(int i) => Encoding.UTF8.GetString(Arg(i));

    /// <summary>An argument as an error line may show it: printable, at most 128 characters.</summary>
    private string Shown(int i)
    {
        var arg = Arg(i);
        if (arg.Length > 128) arg = arg[..128];
        var text = new StringBuilder(arg.Length);
        foreach (var b in arg) text.Append(b is >= 0x20 and < 0x7f and not (byte)'\'' ? (char)b : '?');
        return text.ToString();
    }
}
