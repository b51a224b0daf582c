-- P2PShare's PostgreSQL schema for the Orleans ADO.NET providers (Microsoft.Orleans.Clustering.AdoNet,
-- .Persistence.AdoNet and .Reminders.AdoNet 10.4.2, ADO.NET invariant "Npgsql").
--
-- The providers ship no SQL: at start each one reads its statements from the table OrleansQuery
-- (`SELECT QueryKey, QueryText FROM OrleansQuery`) and runs them with named parameters (@Name).
-- This file creates our own tables and stores our own statements under the keys the providers ask
-- for. What each statement receives and must return is noted above it.
--
-- Idempotent: tables and indexes are created only when missing, and the stored statements are
-- upserted, so applying a newer version of this file updates them. Plain SQL (no psql commands);
-- apply it as the role that should own the objects (deploy/postgres/setup.sh does).

SET client_min_messages = warning;

-- The providers' query lookup. Its name and columns are fixed by the providers, which write them
-- unquoted: PostgreSQL folds them to lower case.
CREATE TABLE IF NOT EXISTS orleansquery (
    querykey  varchar(64) PRIMARY KEY,
    querytext text        NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Cluster membership. `cluster_id` is Orleans' ClusterId (the providers call it DeploymentId).
-- One version row per cluster: every insert or update of a member must name the version it read
-- and bumps it, which is how Orleans serialises concurrent membership changes.

CREATE TABLE IF NOT EXISTS p2pshare_membership_version (
    cluster_id text        PRIMARY KEY,
    version    integer     NOT NULL DEFAULT 0,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS p2pshare_membership (
    cluster_id      text        NOT NULL REFERENCES p2pshare_membership_version (cluster_id) ON DELETE CASCADE,
    address         text        NOT NULL,
    port            integer     NOT NULL,
    generation      integer     NOT NULL,
    silo_name       text        NOT NULL,
    host_name       text        NOT NULL,
    status          integer     NOT NULL,   -- Orleans SiloStatus: 3 Active, 6 Dead, ...
    proxy_port      integer     NOT NULL,   -- gateway port; 0 = no gateway
    suspect_times   text,                   -- "silo,time|silo,time" votes, as Orleans formats them
    start_time      timestamptz NOT NULL,
    i_am_alive_time timestamptz NOT NULL,
    PRIMARY KEY (cluster_id, address, port, generation)
);

-- ---------------------------------------------------------------------------------------------
-- Grain state (job records live here in postgres mode). A grain is identified by service, grain
-- type and grain key; the provider also sends 32-bit hashes of type and key, which lead the index.
-- `version` is the ETag: every write names the version it read and gets the next one.

CREATE TABLE IF NOT EXISTS p2pshare_grain_state (
    service_id         text        NOT NULL,
    grain_type_hash    integer     NOT NULL,
    grain_type         text        NOT NULL,
    grain_id_hash      integer     NOT NULL,
    grain_id_n0        bigint      NOT NULL,
    grain_id_n1        bigint      NOT NULL,
    grain_id_extension text        NOT NULL DEFAULT '',  -- string key or key extension; '' = none
    payload            bytea,                            -- NULL: state cleared
    version            integer     NOT NULL,
    modified_at        timestamptz NOT NULL DEFAULT now()
);

-- Unique per grain. Type and key strings enter through their digests so that long names cannot
-- exceed the index's entry size.
CREATE UNIQUE INDEX IF NOT EXISTS p2pshare_grain_state_grain ON p2pshare_grain_state (
    grain_id_hash, grain_type_hash, service_id, grain_id_n0, grain_id_n1,
    md5(grain_type), md5(grain_id_extension));

-- ---------------------------------------------------------------------------------------------
-- Reminders. `grain_hash` is the grain's uniform hash as a signed 32-bit integer: reminder
-- services own ranges of the hash ring and read their rows by range.

CREATE TABLE IF NOT EXISTS p2pshare_reminders (
    service_id    text        NOT NULL,
    grain_id      text        NOT NULL,
    reminder_name text        NOT NULL,
    grain_hash    integer     NOT NULL,
    start_time    timestamptz NOT NULL,
    period_ms     bigint      NOT NULL,
    version       integer     NOT NULL,
    PRIMARY KEY (service_id, grain_id, reminder_name)
);

CREATE INDEX IF NOT EXISTS p2pshare_reminders_ring ON p2pshare_reminders (service_id, grain_hash);

-- ---------------------------------------------------------------------------------------------
-- The statements. Result columns are quoted so that they carry exactly the names the providers
-- read. Version counters wrap from 2147483647 to 1 instead of overflowing.

INSERT INTO orleansquery (querykey, querytext) VALUES

-- Membership -----------------------------------------------------------------------------------

-- Creates the cluster's version row if missing. In: DeploymentId. Out: one boolean, true when
-- this call created it.
('InsertMembershipVersionKey', $sql$
WITH created AS (
    INSERT INTO p2pshare_membership_version (cluster_id) VALUES (@DeploymentId)
    ON CONFLICT (cluster_id) DO NOTHING
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM created)
$sql$),

-- Every member of the cluster plus the table version. In: DeploymentId. Out: at least one row
-- (the version); member columns are NULL when the cluster has no members.
('MembershipReadAllKey', $sql$
SELECT v.version         AS "Version",
       m.address         AS "Address",
       m.port            AS "Port",
       m.generation      AS "Generation",
       m.silo_name       AS "SiloName",
       m.host_name       AS "HostName",
       m.status          AS "Status",
       m.proxy_port      AS "ProxyPort",
       m.suspect_times   AS "SuspectTimes",
       m.start_time      AS "StartTime",
       m.i_am_alive_time AS "IAmAliveTime"
  FROM p2pshare_membership_version v
  LEFT JOIN p2pshare_membership m ON m.cluster_id = v.cluster_id
 WHERE v.cluster_id = @DeploymentId
$sql$),

-- One member (Address, Port, Generation) plus the table version; same shape as MembershipReadAllKey.
('MembershipReadRowKey', $sql$
SELECT v.version         AS "Version",
       m.address         AS "Address",
       m.port            AS "Port",
       m.generation      AS "Generation",
       m.silo_name       AS "SiloName",
       m.host_name       AS "HostName",
       m.status          AS "Status",
       m.proxy_port      AS "ProxyPort",
       m.suspect_times   AS "SuspectTimes",
       m.start_time      AS "StartTime",
       m.i_am_alive_time AS "IAmAliveTime"
  FROM p2pshare_membership_version v
  LEFT JOIN p2pshare_membership m
         ON m.cluster_id = v.cluster_id
        AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
 WHERE v.cluster_id = @DeploymentId
$sql$),

-- Adds a member if the table is still at version @Version and the member is new; bumps the
-- version in the same statement. The version row's lock serialises concurrent writers: a second
-- writer that read the same version finds it changed and adds nothing. Out: one boolean.
('InsertMembershipKey', $sql$
WITH bumped AS (
    UPDATE p2pshare_membership_version
       SET version = CASE WHEN version = 2147483647 THEN 1 ELSE version + 1 END,
           changed_at = now()
     WHERE cluster_id = @DeploymentId
       AND version = @Version
       AND NOT EXISTS (SELECT 1 FROM p2pshare_membership
                        WHERE cluster_id = @DeploymentId
                          AND address = @Address AND port = @Port AND generation = @Generation)
    RETURNING cluster_id),
added AS (
    INSERT INTO p2pshare_membership (cluster_id, address, port, generation, silo_name, host_name,
                                     status, proxy_port, start_time, i_am_alive_time)
    SELECT cluster_id, @Address, @Port, @Generation, @SiloName, @HostName,
           @Status, @ProxyPort, @StartTime, @IAmAliveTime
      FROM bumped
    ON CONFLICT DO NOTHING
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM added)
$sql$),

-- Changes a member's status, suspicion votes and heartbeat if the table is still at version
-- @Version; bumps the version. Out: one boolean.
('UpdateMembershipKey', $sql$
WITH bumped AS (
    UPDATE p2pshare_membership_version
       SET version = CASE WHEN version = 2147483647 THEN 1 ELSE version + 1 END,
           changed_at = now()
     WHERE cluster_id = @DeploymentId
       AND version = @Version
       AND EXISTS (SELECT 1 FROM p2pshare_membership
                    WHERE cluster_id = @DeploymentId
                      AND address = @Address AND port = @Port AND generation = @Generation)
    RETURNING cluster_id),
changed AS (
    UPDATE p2pshare_membership m
       SET status = @Status,
           suspect_times = @SuspectTimes,
           i_am_alive_time = @IAmAliveTime
      FROM bumped
     WHERE m.cluster_id = bumped.cluster_id
       AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM changed)
$sql$),

-- A member's heartbeat; not versioned (heartbeats are diagnostic and mark stale entries).
('UpdateIAmAlivetimeKey', $sql$
UPDATE p2pshare_membership
   SET i_am_alive_time = @IAmAliveTime
 WHERE cluster_id = @DeploymentId
   AND address = @Address AND port = @Port AND generation = @Generation
$sql$),

-- Gateways clients may connect to. In: DeploymentId, Status (Active). Out: Address, ProxyPort,
-- Generation of each live member that has a gateway.
('GatewaysQueryKey', $sql$
SELECT address    AS "Address",
       proxy_port AS "ProxyPort",
       generation AS "Generation"
  FROM p2pshare_membership
 WHERE cluster_id = @DeploymentId
   AND status = @Status
   AND proxy_port > 0
$sql$),

-- Forgets a whole cluster (members and version). In: DeploymentId.
('DeleteMembershipTableEntriesKey', $sql$
DELETE FROM p2pshare_membership_version
 WHERE cluster_id = @DeploymentId
$sql$),

-- Removes members declared dead whose last heartbeat is older than @IAmAliveTime.
('CleanupDefunctSiloEntriesKey', $sql$
DELETE FROM p2pshare_membership
 WHERE cluster_id = @DeploymentId
   AND status = 6
   AND i_am_alive_time < @IAmAliveTime
$sql$),

-- Grain state ------------------------------------------------------------------------------------
-- Every statement receives the grain's identity: ServiceId, GrainTypeHash, GrainTypeString,
-- GrainIdHash, GrainIdN0, GrainIdN1, GrainIdExtensionString (NULL when the key has none).

-- State and ETag of one grain. Out: PayloadBinary (NULL once cleared) and Version; no row when
-- the grain never wrote.
('ReadFromStorageKey', $sql$
SELECT payload AS "PayloadBinary",
       version AS "Version"
  FROM p2pshare_grain_state
 WHERE grain_id_hash = @GrainIdHash AND grain_type_hash = @GrainTypeHash
   AND service_id = @ServiceId
   AND grain_id_n0 = @GrainIdN0 AND grain_id_n1 = @GrainIdN1
   AND grain_type = @GrainTypeString
   AND grain_id_extension = coalesce(@GrainIdExtensionString, '')
$sql$),

-- Writes PayloadBinary if the stored version is still @GrainStateVersion (NULL: the grain saw no
-- record, so none may exist). Out: NewGrainStateVersion, or no row on an ETag conflict, which the
-- provider reports as InconsistentStateException.
('WriteToStorageKey', $sql$
WITH updated AS (
    UPDATE p2pshare_grain_state
       SET payload = @PayloadBinary,
           version = CASE WHEN version = 2147483647 THEN 1 ELSE version + 1 END,
           modified_at = now()
     WHERE @GrainStateVersion IS NOT NULL
       AND grain_id_hash = @GrainIdHash AND grain_type_hash = @GrainTypeHash
       AND service_id = @ServiceId
       AND grain_id_n0 = @GrainIdN0 AND grain_id_n1 = @GrainIdN1
       AND grain_type = @GrainTypeString
       AND grain_id_extension = coalesce(@GrainIdExtensionString, '')
       AND version = @GrainStateVersion
    RETURNING version),
inserted AS (
    INSERT INTO p2pshare_grain_state (service_id, grain_type_hash, grain_type, grain_id_hash,
                                      grain_id_n0, grain_id_n1, grain_id_extension, payload, version)
    SELECT @ServiceId, @GrainTypeHash, @GrainTypeString, @GrainIdHash,
           @GrainIdN0, @GrainIdN1, coalesce(@GrainIdExtensionString, ''), @PayloadBinary, 1
     WHERE @GrainStateVersion IS NULL
    ON CONFLICT DO NOTHING
    RETURNING version)
SELECT version AS "NewGrainStateVersion" FROM updated
UNION ALL
SELECT version FROM inserted
$sql$),

-- Clears the state (keeps the row and its version chain) if the stored version is still
-- @GrainStateVersion. Out: the new version, or no row on an ETag conflict.
('ClearStorageKey', $sql$
UPDATE p2pshare_grain_state
   SET payload = NULL,
       version = CASE WHEN version = 2147483647 THEN 1 ELSE version + 1 END,
       modified_at = now()
 WHERE grain_id_hash = @GrainIdHash AND grain_type_hash = @GrainTypeHash
   AND service_id = @ServiceId
   AND grain_id_n0 = @GrainIdN0 AND grain_id_n1 = @GrainIdN1
   AND grain_type = @GrainTypeString
   AND grain_id_extension = coalesce(@GrainIdExtensionString, '')
   AND version = @GrainStateVersion
RETURNING version
$sql$),

-- Deletes the row (used instead of ClearStorageKey when the provider's DeleteStateOnClear is on)
-- if the stored version is still @GrainStateVersion. Out: a value different from that version,
-- or no row on an ETag conflict.
('DeleteStorageKey', $sql$
DELETE FROM p2pshare_grain_state
 WHERE grain_id_hash = @GrainIdHash AND grain_type_hash = @GrainTypeHash
   AND service_id = @ServiceId
   AND grain_id_n0 = @GrainIdN0 AND grain_id_n1 = @GrainIdN1
   AND grain_type = @GrainTypeString
   AND grain_id_extension = coalesce(@GrainIdExtensionString, '')
   AND version = @GrainStateVersion
RETURNING CASE WHEN version = 2147483647 THEN 1 ELSE version + 1 END
$sql$),

-- Reminders --------------------------------------------------------------------------------------
-- Rows come back as GrainId, ReminderName, StartTime, Period (milliseconds), Version (the ETag).

-- Inserts or replaces a reminder. In: ServiceId, GrainId, ReminderName, GrainHash, StartTime,
-- Period. Out: Version.
('UpsertReminderRowKey', $sql$
INSERT INTO p2pshare_reminders (service_id, grain_id, reminder_name, grain_hash, start_time, period_ms, version)
VALUES (@ServiceId, @GrainId, @ReminderName, @GrainHash, @StartTime, @Period, 1)
ON CONFLICT (service_id, grain_id, reminder_name) DO UPDATE
   SET grain_hash = EXCLUDED.grain_hash,
       start_time = EXCLUDED.start_time,
       period_ms = EXCLUDED.period_ms,
       version = CASE WHEN p2pshare_reminders.version = 2147483647 THEN 1
                      ELSE p2pshare_reminders.version + 1 END
RETURNING version AS "Version"
$sql$),

-- All reminders of one grain. In: ServiceId, GrainId.
('ReadReminderRowsKey', $sql$
SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
       period_ms AS "Period", version AS "Version"
  FROM p2pshare_reminders
 WHERE service_id = @ServiceId AND grain_id = @GrainId
$sql$),

-- One reminder. In: ServiceId, GrainId, ReminderName. Out: the row, or none.
('ReadReminderRowKey', $sql$
SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
       period_ms AS "Period", version AS "Version"
  FROM p2pshare_reminders
 WHERE service_id = @ServiceId AND grain_id = @GrainId AND reminder_name = @ReminderName
$sql$),

-- Reminders whose hash is in the ring range (BeginHash, EndHash]. The provider compares the
-- bounds as signed integers and sends this statement when BeginHash < EndHash ...
('ReadRangeRows1Key', $sql$
SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
       period_ms AS "Period", version AS "Version"
  FROM p2pshare_reminders
 WHERE service_id = @ServiceId AND grain_hash > @BeginHash AND grain_hash <= @EndHash
$sql$),

-- ... and this one when the range wraps around (BeginHash >= EndHash, the whole ring if equal).
('ReadRangeRows2Key', $sql$
SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
       period_ms AS "Period", version AS "Version"
  FROM p2pshare_reminders
 WHERE service_id = @ServiceId AND (grain_hash > @BeginHash OR grain_hash <= @EndHash)
$sql$),

-- Deletes a reminder if its version is still @Version. Out: one boolean, true when deleted.
('DeleteReminderRowKey', $sql$
WITH deleted AS (
    DELETE FROM p2pshare_reminders
     WHERE service_id = @ServiceId AND grain_id = @GrainId AND reminder_name = @ReminderName
       AND version = @Version
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM deleted)
$sql$),

-- Deletes every reminder of a service. In: ServiceId.
('DeleteReminderRowsKey', $sql$
DELETE FROM p2pshare_reminders
 WHERE service_id = @ServiceId
$sql$)

ON CONFLICT (querykey) DO UPDATE SET querytext = EXCLUDED.querytext;
