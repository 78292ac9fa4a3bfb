#!/usr/bin/env bash
# Remote execution on the bootstrap-shaped workload: a root filesystem of SIZE_MIB (default
# 256) MiB, with absolute symlinks, as the input of 8 small builds. Realised on a throwaway
# BuildGrid with kiln's bot (remote/tests/buildgrid/), then again with changed builds (the root
# filesystem unchanged), and locally for the wall time. Prints the bytes each remote run
# uploaded (the `remote:` summary line), what the bot's actions took from the CAS, its blob
# cache and its store (its `input root:` lines, summed per run; a bot older than the cache
# prints none) and the wall times.
#   KILN=target/debug/kiln benches/remote-rootfs.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kiln=$(realpath "${KILN:-$repo/target/debug/kiln}")
venv=${KILN_BUILDGRID_VENV:-$repo/target/buildgrid-venv}
size=${SIZE_MIB:-256}
work=$(mktemp -d)
chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
worker_pid=
cleanup() {
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null
  bash "$repo/remote/tests/buildgrid/stop.sh" "$work/server"
  rm -rf "$work"
}
trap cleanup EXIT
bash "$repo/remote/tests/buildgrid/start.sh" "$venv" "$work/server" "$port" "$pgport"
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do sleep 0.5; done
PATH="$(dirname "$kiln"):$PATH" "$kiln" remote-worker -j 2 --executor "grpc://127.0.0.1:$port" \
  --work-dir "$work/worker" >"$work/worker.log" 2>&1 &
worker_pid=$!

mkdir -p "$work/rootfs/usr/lib" "$work/rootfs/etc" "$work/rootfs/bin"
for i in $(seq 1 "$size"); do head -c 1048576 /dev/urandom >"$work/rootfs/usr/lib/blob$i"; done
ln -s /usr/lib/blob1 "$work/rootfs/usr/lib/libabsolute.so"
ln -s /etc/os-release "$work/rootfs/etc/absolute-link"
echo 'ID=bench' >"$work/rootfs/etc/os-release"
cat >"$work/bench.nix" <<'NIX'
{ variant ? "first" }:
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path { name = "busybox"; path = binDir; filter = path: type: baseNameOf path == "busybox"; };
  sh = "${busybox}/busybox";
  rootfs = builtins.path { name = "rootfs"; path = ./rootfs; };
  step = n: derivation {
    name = "step-${toString n}";
    system = builtins.currentSystem;
    builder = sh;
    args = [ "sh" "-c" "${sh} mkdir $out; ${sh} ls -R ${rootfs} | ${sh} wc -l > $out/count; echo ${variant} ${toString n} > $out/which" ];
  };
in builtins.map step [ 1 2 3 4 5 6 7 8 ]
NIX
echo 'store = "'"$work"'/unused"' >"$work/config.toml"
cd "$work"
run() { # label store args...
  local label=$1 store=$2; shift 2
  local start end seen
  seen=$(wc -l <"$work/worker.log")
  start=$(date +%s.%N)
  "$kiln" --config "$work/config.toml" --store "$store" realise bench.nix --no-out-link "$@" \
    >/dev/null 2>"$work/$label.err" || { cat "$work/$label.err" >&2; exit 1; }
  end=$(date +%s.%N)
  printf '%-28s %6.1f s   %s\n' "$label" "$(echo "$end - $start" | bc)" \
    "$(grep '^remote:' "$work/$label.err" || true)"
  tail -n +"$((seen + 1))" "$work/worker.log" | awk -F'input root: ' 'NF > 1 {
      n = split($2, w, /[^0-9]+/); k = 0
      for (i = 1; i <= n; i++) if (w[i] != "") v[++k] += w[i]; lines++ }
    END { if (lines) printf "%31s bot: %d blobs fetched (%.0f bytes), %d from its cache (%.0f bytes), %d valid in its store (%.0f bytes)\n", "", v[1], v[2], v[3], v[4], v[5], v[6] }'
}
echo "root filesystem: $size MiB, 8 builds reading it"
run "remote, first" "$work/store-remote" --remote "grpc://127.0.0.1:$port"
run "remote, builds changed" "$work/store-remote" --remote "grpc://127.0.0.1:$port" --argstr variant second
run "local" "$work/store-local"
echo "actions the bot executed: $(grep -c 'executing action' "$work/worker.log")"
