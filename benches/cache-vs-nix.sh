#!/usr/bin/env bash
# Binary caches, kiln against Nix 2.8 side by side in one run: pushing a closure to a file://
# cache (`kiln copy --to` vs `nix copy --to`, same compression) and substituting it from the
# cache served over HTTP on 127.0.0.1 by `python3 -m http.server` (`kiln copy --from` into a
# fresh kiln store vs `nix copy --from` into a fresh Nix store, both checking signatures).
# Each step runs RUNS times (default 3), kiln and Nix alternately, each run into a fresh cache
# or store; prints the median wall time and peak RSS of each, and the ratio kiln/Nix. The closure is made of host trees (default
# /usr/lib/llvm-14 and /usr/lib/gcc, ~470 MiB) added to a kiln store with /nix/store paths
# and tied together by a text file that refers to them.
#
#   benches/cache-vs-nix.sh                   # COMPRESSION=zstd|xz, TREES="/dir1 /dir2", RUNS=3
#
# Needs: nix-bin (Nix 2.8), python3, GNU time (/usr/bin/time); a release kiln (built if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$here/target/release/kiln}
compression=${COMPRESSION:-zstd}
runs=${RUNS:-3}
trees=${TREES:-/usr/lib/llvm-14 /usr/lib/gcc}
[ -x "$kiln" ] || (cd "$here" && cargo build --release -q --bin kiln)
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/conf"
printf 'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command\n' \
  > "$work/conf/nix.conf"
# Nix with its own state and a chroot store under $work/$1 (nixin NAME ARGS...).
nixin() {
  local name=$1
  shift
  env NIX_CONF_DIR="$work/conf" NIX_STATE_DIR="$work/$name/var" NIX_LOG_DIR="$work/$name/var/log" \
    NIX_STORE_DIR=/nix/store NIX_REMOTE="local?root=$work/$name/root" "$@"
}
# kiln with the store $work/$1 (kilnin NAME ARGS...).
kilnin() {
  local name=$1
  shift
  "$kiln" --store "$work/$name" --store-dir /nix/store --config "$work/kiln.toml" "$@"
}
# Seconds and peak RSS (KiB) of `kilnin`/`nixin` ARGS..., as "SECONDS RSS".
measure() {
  local tool=$1 name=$2
  shift 2
  local command
  if [ "$tool" = kilnin ]; then
    command=("$kiln" --store "$work/$name" --store-dir /nix/store --config "$work/kiln.toml" "$@")
  else
    command=(env NIX_CONF_DIR="$work/conf" NIX_STATE_DIR="$work/$name/var"
      NIX_LOG_DIR="$work/$name/var/log" NIX_STORE_DIR=/nix/store
      NIX_REMOTE="local?root=$work/$name/root" "$@")
  fi
  /usr/bin/time -f '%e %M' -o "$work/time" "${command[@]}" >/dev/null 2>"$work/stderr" || {
    cat "$work/stderr" >&2
    exit 1
  }
  cat "$work/time"
}

# The closure: every tree, and a text referring to all of them.
{
  echo 'let trees = ['
  for t in $trees; do echo "  (builtins.path { path = $t; name = \"$(basename "$t")\"; })"; done
  echo ']; in derivation { name = "bench"; system = "x86_64-linux"; builder = "/bin/sh";'
  echo '  refs = builtins.toFile "bench-root" (toString trees); }'
} > "$work/closure.nix"
: > "$work/kiln.toml"
kilnin source instantiate "$work/closure.nix" >/dev/null
root=$(cd "$work/source/store" && ls -d ./*-bench-root)
root=/nix/store/${root#./}
size=$(kilnin source path-info -S "$root" | awk '{print $2}')
printf 'closure of %s: %.0f MiB (NAR), compression %s\n' "$root" "$(echo "$size / 1048576" | bc -l)" "$compression"

kilnin source key generate bench-1 -o "$work/bench.sec" 2>/dev/null
public=$(cat "$work/bench.sec.pub")
printf 'secret-key-files = ["%s"]\ntrusted-public-keys = ["%s"]\n' "$work/bench.sec" "$public" > "$work/kiln.toml"

# Nix needs the closure in its store to push it: fetch it from a cache kiln wrote (untimed).
kilnin source copy --to "file://$work/seed" --compression none "$root" 2>/dev/null
nixin pusher nix copy --from "file://$work/seed" --trusted-public-keys "$public" "$root"
nixin pusher nix store sign -r --key-file "$work/bench.sec" "$root"

# The median of numbers on standard input.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Runs kiln's and Nix's command RUNS times alternately (ARGS with @N@ replaced by the run
# number); prints median seconds and peak RSS of each, and the ratios.
compare() {
  local label=$1 kiln_line=$2 nix_line=$3
  : > "$work/k.s"; : > "$work/k.m"; : > "$work/n.s"; : > "$work/n.m"
  for i in $(seq "$runs"); do
    read -r s m < <(eval "measure ${kiln_line//@N@/$i}")
    echo "$s" >> "$work/k.s"; echo "$m" >> "$work/k.m"
    read -r s m < <(eval "measure ${nix_line//@N@/$i}")
    echo "$s" >> "$work/n.s"; echo "$m" >> "$work/n.m"
  done
  local ks km ns nm
  ks=$(median < "$work/k.s"); km=$(median < "$work/k.m")
  ns=$(median < "$work/n.s"); nm=$(median < "$work/n.m")
  printf '%-12s %9.2f %9.2f %7.2f %10.1f %10.1f %7.2f\n' "$label" "$ks" "$ns" \
    "$(echo "$ks / $ns" | bc -l)" "$(echo "$km / 1024" | bc -l)" "$(echo "$nm / 1024" | bc -l)" \
    "$(echo "$km / $nm" | bc -l)"
}

printf '%s runs each, medians (seconds, peak RSS MiB)\n' "$runs"
printf '%-12s %9s %9s %7s %10s %10s %7s\n' step kiln_s nix_s ratio kiln_MiB nix_MiB ratio
compare push \
  "kilnin source copy --to file://$work/kiln-cache-@N@ --compression $compression $root" \
  "nixin pusher nix copy --to 'file://$work/nix-cache-@N@?compression=$compression' $root"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/kiln-cache-1" "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/nix-cache-info" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port
compare substitute \
  "kilnin fetched-@N@ copy --from $url $root" \
  "nixin fetched-@N@ nix copy --from $url --trusted-public-keys '$public' $root"
# Both stores hold the same closure with the same hashes.
diff <(kilnin fetched-1 path-info --json -r "$root" | python3 -c 'import json,sys; print(sorted((i["path"], i["narHash"]) for i in json.load(sys.stdin)))') \
     <(nixin fetched-1 nix path-info --json -r "$root" | python3 -c 'import json,sys; print(sorted((i["path"], i["narHash"]) for i in json.load(sys.stdin)))') \
  && echo "same paths and NAR hashes in both stores"
