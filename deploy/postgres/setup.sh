#!/usr/bin/env bash
# Prepares a PostgreSQL server for P2PShare: creates the app role and its database when missing
# and applies schema.sql as that role. Idempotent: running it again changes nothing but the
# stored Orleans queries (which a newer schema.sql may update) and, when given, the password.
#
#   setup.sh [--host HOST] [--port PORT] [--admin-user USER] [--admin-db DB]
#            [--database NAME] [--role NAME] [--password PW] [--app-host HOST] [--schema-only]
#
#   --host HOST        server host name/address, or a Unix socket folder, for the admin
#                      connection (default $PGHOST, else libpq's default)
#   --port PORT        server port (default $PGPORT, else 5432)
#   --admin-user USER  a role allowed to create roles and databases (default $PGUSER, else the OS
#                      user); its password, if it needs one, comes from $PGPASSWORD or ~/.pgpass
#   --admin-db DB      database the admin connects to (default postgres)
#   --database NAME    the app's database (default p2pshare)
#   --role NAME        the app's login role, owner of the database (default p2pshare)
#   --password PW      the app role's password (default $P2PSHARE_PG_PASSWORD); required. A new
#                      role is created with it, an existing role's password is set to it.
#   --app-host HOST    where the app role connects to apply the schema (default: --host, or
#                      127.0.0.1 when --host is a socket folder)
#   --schema-only      skip role and database: only apply schema.sql as the app role (for a
#                      database someone else provisioned)
#
# Exit codes: 0 ok, 1 failure (connection, SQL), 2 usage.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
schema_file=$script_dir/schema.sql

readonly EXIT_FAILED=1 EXIT_USAGE=2

die() {
  local code=$1
  shift
  echo "setup.sh: $*" >&2
  exit "$code"
}

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  exit "$EXIT_USAGE"
}

host=${PGHOST:-}
port=${PGPORT:-5432}
admin_user=${PGUSER:-}
admin_db=postgres
database=p2pshare
role=p2pshare
password=${P2PSHARE_PG_PASSWORD:-}
app_host=""
schema_only=false

while (($# > 0)); do
  arg=$1
  shift
  case $arg in
    --schema-only) schema_only=true; continue ;;
    -h | --help) usage ;;
    --*=*) set -- "${arg#*=}" "$@"; arg=${arg%%=*} ;;
  esac
  case $arg in
    --host | --port | --admin-user | --admin-db | --database | --role | --password | --app-host)
      (($# >= 1)) || die "$EXIT_USAGE" "$arg needs a value"
      value=$1
      shift
      ;;
    *) die "$EXIT_USAGE" "unknown argument '$arg'" ;;
  esac
  case $arg in
    --host) host=$value ;;
    --port) port=$value ;;
    --admin-user) admin_user=$value ;;
    --admin-db) admin_db=$value ;;
    --database) database=$value ;;
    --role) role=$value ;;
    --password) password=$value ;;
    --app-host) app_host=$value ;;
  esac
done

# Names go into SQL as identifiers and into connection strings; keep them plain.
for pair in "database:$database" "role:$role" "admin-db:$admin_db"; do
  [[ ${pair#*:} =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] ||
    die "$EXIT_USAGE" "invalid --${pair%%:*} '${pair#*:}' (letters, digits and _, not starting with a digit)"
done
[[ $port =~ ^[0-9]+$ ]] && ((10#$port >= 1 && 10#$port <= 65535)) || die "$EXIT_USAGE" "invalid --port '$port'"
[[ -n $password ]] || die "$EXIT_USAGE" "the app role's password is required (--password or P2PSHARE_PG_PASSWORD)"
[[ -f $schema_file ]] || die "$EXIT_FAILED" "schema file $schema_file not found"
command -v psql >/dev/null || die "$EXIT_FAILED" "psql not found (install the postgresql-client package)"

if [[ -z $app_host ]]; then
  case $host in
    /* | '') app_host=127.0.0.1 ;;
    *) app_host=$host ;;
  esac
fi

export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

# psql single-quoted meta-command arguments: backslashes and quotes are doubled.
psql_quote() {
  local s=${1//\\/\\\\}
  s=${s//\'/\'\'}
  printf "'%s'" "$s"
}

# psql's own complaint, first line only, for our one-line error messages.
psql_error=""
first_error_line() {
  local line
  line=$(grep -m1 -E 'error|FATAL|ERROR' <<<"$1" || true)
  [[ -n $line ]] || line=$(head -n 1 <<<"$1")
  line=${line#psql: }
  echo "${line#error: }"
}

admin_psql() {
  local db=$1
  shift
  local -a args=(-X -q -v ON_ERROR_STOP=1 -d "$db" -p "$port")
  [[ -z $host ]] || args+=(-h "$host")
  [[ -z $admin_user ]] || args+=(-U "$admin_user")
  local err
  err=$(psql "${args[@]}" "$@" 2>&1 >/dev/null) || { psql_error=$(first_error_line "$err"); return 1; }
}

if [[ $schema_only == false ]]; then
  # The password travels on psql's stdin, never on a command line that `ps` shows.
  admin_psql "$admin_db" <<EOF || die "$EXIT_FAILED" "could not create role '$role' or database '$database' as ${admin_user:-$(id -un)}: $psql_error"
\set role '$role'
\set db '$database'
\set pw $(psql_quote "$password")
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'role', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'role') \gexec
EOF
  # A database created by someone else may not let the role create tables in its public schema.
  admin_psql "$database" <<EOF || die "$EXIT_FAILED" "could not grant '$role' the use of schema public in '$database': $psql_error"
\set role '$role'
SET client_min_messages = warning;
SELECT format('GRANT USAGE, CREATE ON SCHEMA public TO %I', :'role') \gexec
EOF
  echo "setup.sh: role '$role' and database '$database' ready" >&2
fi

# The schema is applied as the app role, so the role owns every object it uses.
if ! err=$(PGPASSWORD=$password psql -X -q -v ON_ERROR_STOP=1 \
  "host=$app_host port=$port dbname=$database user=$role" -f "$schema_file" 2>&1 >/dev/null); then
  die "$EXIT_FAILED" "could not apply schema.sql as '$role' at $app_host:$port/$database: $(first_error_line "$err")"
fi
echo "setup.sh: schema applied to '$database'" >&2
