namespace P2PShare.Peer;

internal static class Usage
{
    public const string Text = """
        p2pshare-peer: runs one P2PShare peer (an Orleans silo sharing its memory and disk).

        Usage: p2pshare-peer --name NAME [options]

          --name NAME            peer name, unique in the cluster (Peer:Name)
          --silo-port N          silo-to-silo port (Peer:SiloPort, default 11111)
          --gateway-port N       client gateway port (Peer:GatewayPort, default 30000)
          --primary HOST:PORT    local clustering: silo endpoint of the primary peer; omit on the primary
          --clustering MODE      local (default: one machine, localhost clustering) or postgres
                                 (membership, job records and reminders in PostgreSQL) (Clustering:Mode)
          --db CONNSTR           postgres mode: Npgsql connection string of the cluster database
                                 (Clustering:ConnectionString), e.g.
                                 'Host=10.0.0.5;Port=5432;Database=p2pshare;Username=p2pshare;Password=...'
          --address IP           postgres mode: address other peers and clients dial (Clustering:AdvertisedAddress;
                                 default: this host's first non-loopback IPv4); the peer listens on all addresses
          --data-dir DIR         where files are kept (Peer:DataDir, default data/NAME)
          --memory-quota BYTES   memory quota (Memory:QuotaBytes, default 256 MiB)
          --disk-quota BYTES     disk quota (Disk:QuotaBytes, default 10 GiB)
          --max-file-size BYTES  largest file (Disk:MaxFileBytes, default 4 GiB)
          --report-interval T    load report period (Tracker:ReportInterval, default 00:00:02)
          --slots N              tasks run at once (Compute:Slots, default: processor count)
          --quantum T            time slice (Compute:Quantum, default 00:00:00.100)
          --legacy-port N        serve the original Python system's peer protocol on this port, e.g. 9000
                                 (Legacy:PeerPort; default: off)
          --tracker-legacy-port N
                                 serve the original tracker protocol on this port, e.g. 8888
                                 (Legacy:TrackerPort; default: off; any peer may host it)
          --legacy-bind IP       address of both seed-protocol ports (Legacy:BindAddress, default 0.0.0.0)
          --http-port N          serve the status page, /api/status, /healthz, /readyz and /metrics on
                                 this port (Http:Port; default: off), e.g. 5000
          --http-bind IP         address of the HTTP port (Http:BindAddress, default 127.0.0.1)
          --dashboard            also serve the Orleans Dashboard at /dashboard/ (Http:Dashboard; turn it
                                 on for every peer of the cluster)

        Every setting can also come from appsettings.json next to the executable, from environment
        variables P2PSHARE__SECTION__KEY (e.g. P2PSHARE__PEER__NAME=peer-1), or as --Section:Key=value.
        Failure detection: section Membership (Orleans ClusterMembershipOptions), e.g.
        --Membership:ProbeTimeout=00:00:02.
        """;
}
