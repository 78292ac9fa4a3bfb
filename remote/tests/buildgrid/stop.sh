#!/usr/bin/env bash
# Stops what start.sh DIR started: the BuildGrid server, then PostgreSQL.
dir=$1
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ -f "$dir/server.pid" ]; then kill "$(cat "$dir/server.pid")" 2>/dev/null; fi
if [ -d "$dir/pg/data" ]; then
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1
fi
exit 0
