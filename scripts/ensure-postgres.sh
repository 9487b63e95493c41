#!/usr/bin/env bash
# Makes sure the Postgres that tests and benchmarks use is answering: starts the machine's
# cluster if it is down, installs PostgreSQL with apt-get if it is missing. Only manages a local
# server; with TEST_DATABASE_URL pointing elsewhere it only waits for it.
set -euo pipefail

url="${TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432/test?sslmode=disable}"
host=$(sed -E 's#^[a-z]+://([^@/]*@)?([^:/?]+).*#\2#' <<<"$url")
port=$(sed -nE 's#^[a-z]+://([^@/]*@)?[^:/?]+:([0-9]+).*#\2#p' <<<"$url"); port=${port:-5432}
user=$(sed -nE 's#^[a-z]+://([^:@/]+)(:[^@]*)?@.*#\1#p' <<<"$url"); user=${user:-root}
dbname=$(sed -nE 's#^[a-z]+://[^/]+/([^?]+).*#\1#p' <<<"$url"); dbname=${dbname:-test}

ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
say() { echo "ensure-postgres: $*" >&2; }

if command -v pg_isready >/dev/null && ready; then exit 0; fi
case "$host" in 127.0.0.1|localhost|::1) ;; *)
  say "waiting for $host:$port (not local, not managed here)"
  for _ in $(seq 60); do ready && exit 0; sleep 1; done
  say "$host:$port does not answer"; exit 1 ;;
esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "PostgreSQL is not installed; installing it with apt-get"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  as_root pg_createcluster "$version" main >/dev/null
fi
hba=/etc/postgresql/$version/main/pg_hba.conf
# Tests connect over TCP as $user without a password, as on the development machines.
if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
fi
say "starting PostgreSQL $version"
as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 60); do ready && break; sleep 0.5; done
ready || { say "PostgreSQL did not come up on $host:$port"; exit 1; }

psql_pg() { as_root su postgres -c "psql -qAt -v ON_ERROR_STOP=1 -c \"$1\""; }
[ "$(psql_pg "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" = 1 ] || psql_pg "CREATE ROLE \\\"$user\\\" SUPERUSER LOGIN"
[ "$(psql_pg "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" = 1 ] || psql_pg "CREATE DATABASE \\\"$dbname\\\" OWNER \\\"$user\\\""
say "PostgreSQL is up on $host:$port"
