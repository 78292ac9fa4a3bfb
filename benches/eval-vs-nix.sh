#!/usr/bin/env bash
# Times `kiln eval --strict` against `nix-instantiate --eval --strict` on every workload of a
# benchmark folder (default: ../shared/bench next to this checkout, or $BENCH_DIR), after
# checking that kiln prints what the folder's expected/NAME.exp holds. Both tools run side by
# side in one hyperfine invocation per workload; prints a table of medians, the ratio kiln/Nix,
# and the geometric mean of the ratios. Peak RSS of one run of each is printed too.
#
#   benches/eval-vs-nix.sh [WORKLOAD...]      # e.g. fib attrs
#
# Needs: hyperfine, nix-instantiate (Debian's nix-bin), python3, GNU time (/usr/bin/time).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$here/../shared/bench}
runs=${RUNS:-5}
kiln=${KILN:-$here/target/release/kiln}
[ -x "$kiln" ] || (cd "$here" && cargo build --release -q)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/nixconf" "$work/nixstate"
printf 'build-users-group =\nsandbox = false\nsubstituters =\n' > "$work/nixconf/nix.conf"
export NIX_REMOTE=dummy:// NIX_STORE_DIR=/nix/store NIX_STATE_DIR="$work/nixstate" \
  NIX_CONF_DIR="$work/nixconf" NIX_LOG_DIR="$work/nixstate/log"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$bench"/*.nix; do
    n=$(basename "$f" .nix)
    [ -f "$bench/expected/$n.exp" ] && names+=("$n")
  done
fi

printf '%-16s %10s %10s %7s %10s %10s\n' workload kiln_ms nix_ms ratio kiln_rss nix_rss
for n in "${names[@]}"; do
  f="$bench/$n.nix"
  got=$("$kiln" eval --strict --store-dir /nix/store "$f" 2>&1) || true
  if [ "$got" != "$(cat "$bench/expected/$n.exp")" ]; then
    echo "$n: kiln printed something else than expected/$n.exp:" >&2
    echo "$got" | head -5 >&2
    exit 1
  fi
  hyperfine -N -w 1 -r "$runs" --export-json "$work/$n.json" \
    "$kiln eval --strict --store-dir /nix/store $f" \
    "nix-instantiate --eval --strict $f" >/dev/null 2>&1
  krss=$( { /usr/bin/time -f %M "$kiln" eval --strict --store-dir /nix/store "$f" >/dev/null; } 2>&1 | tail -1)
  nrss=$( { /usr/bin/time -f %M nix-instantiate --eval --strict "$f" >/dev/null; } 2>&1 | tail -1)
  python3 - "$work/$n.json" "$n" "$krss" "$nrss" >>"$work/rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k, x = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"{sys.argv[2]} {k:.1f} {x:.1f} {k / x:.3f} {sys.argv[3]} {sys.argv[4]}")
PY
  tail -1 "$work/rows" | awk '{printf "%-16s %10s %10s %7s %9sK %9sK\n", $1, $2, $3, $4, $5, $6}'
done
python3 - "$work/rows" <<'PY'
import math, sys
ratios = [float(l.split()[3]) for l in open(sys.argv[1])]
print(f"geometric mean of kiln/Nix: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
PY
