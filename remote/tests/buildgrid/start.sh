#!/usr/bin/env bash
# Starts a throwaway BuildGrid (REAPI v2 server, from PyPI) on 127.0.0.1 for kiln's remote
# execution tests: PostgreSQL in DIR/pg, CAS on disk in DIR/cas, the server's log in
# DIR/server.log. Prints nothing on success; the caller reads DIR/port.
#   start.sh VENV DIR PORT PGPORT
# VENV holds `bgd` (pip install buildgrid==0.4.4 "psycopg[binary]"). Stop with stop.sh DIR.
set -euo pipefail
venv=$1 dir=$2 port=$3 pgport=$4
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$dir/cas"
chmod 755 "$dir"
if ! runuser -u postgres -- test -x "$dir"; then
  echo "start.sh: the postgres user cannot reach $dir (a parent folder is private)" >&2
  exit 1
fi
# PostgreSQL refuses to run as root: its data belongs to the `postgres` user.
install -d -o postgres -g postgres "$dir/pg"
runuser -u postgres -- "$pgbin/initdb" -A trust -U bgd -D "$dir/pg/data" >"$dir/pg-init.log" 2>&1
runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w \
  -o "-h 127.0.0.1 -p $pgport -k $dir/pg" start >/dev/null
runuser -u postgres -- "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U bgd bgd
db="postgresql+psycopg2://bgd@127.0.0.1:$pgport/bgd"
"$venv/bin/bgd" migrate apply "$db" >"$dir/migrate.log" 2>&1
cat >"$dir/server.yml" <<YAML
server:
  - !channel
    address: "127.0.0.1:$port"
    insecure-mode: true
# Every waiting Execute stream and long-polling bot holds one of the server's threads.
thread-pool-size: 200
authorization:
  method: none
connections:
  - !sql-connection &sql
    connection-string: $db
storages:
  - !disk-storage &cas
    path: $dir/cas
caches:
  - !lru-action-cache &action-cache
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &scheduler
    sql: *sql
    storage: *cas
    action-cache: *action-cache
    bot-session-keepalive-timeout: 30
    property-set: !dynamic-property-set
      match-property-keys: [kiln-system]
      wildcard-property-keys: [kiln-features]
instances:
  - name: ""
    services:
      - !action-cache
        cache: *action-cache
      - !execution
        scheduler: *scheduler
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
      - !bots
        scheduler: *scheduler
YAML
"$venv/bin/bgd" server lint "$dir/server.yml" >"$dir/lint.log" 2>&1
setsid "$venv/bin/bgd" server start "$dir/server.yml" >"$dir/server.log" 2>&1 &
echo $! >"$dir/server.pid"
