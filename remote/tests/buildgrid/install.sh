#!/usr/bin/env bash
# Installs the REAPI server of kiln's remote execution tests into the virtual environment VENV
# (default target/buildgrid-venv): BuildGrid 0.4.4, the newest release that runs on Python
# 3.11, with the PostgreSQL drivers it loads (psycopg2 for its scheduler and notifications).
# Needs python3-venv and, to run, Debian's postgresql (.ci/run installs both).
set -euo pipefail
venv=${1:-target/buildgrid-venv}
if [ -x "$venv/bin/bgd" ] && "$venv/bin/pip" freeze 2>/dev/null | grep -qx 'buildgrid==0.4.4'; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check \
  "buildgrid==0.4.4" "psycopg2-binary==2.9.13" "psycopg[binary]==3.3.9"
