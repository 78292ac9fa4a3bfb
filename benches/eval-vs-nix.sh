#!/usr/bin/env bash
# Times `kiln eval --strict` against `nix-instantiate --eval --strict` on every workload of two
# folders, after checking that kiln prints what the folder's expected/NAME.exp holds:
#
# - the microbenchmarks: ../shared/bench next to this checkout, or $BENCH_DIR;
# - benches/nixpkgs-lib: programs written against nixpkgs' `lib` (module system, systems,
#   a package set, generators). They import `<nixpkgs-lib/lib>`; the lib is taken from
#   $NIXPKGS_LIB (a checkout of nix-community/nixpkgs.lib at $NIXPKGS_LIB_REV, the revision
#   their expected outputs were made with, the newest Nix 2.8 can evaluate), else cloned at
#   that revision into ~/.cache/kiln-bench when the network allows, else skipped.
#
# The machines are shared and noisy, so the two tools run alternately, one run each per round,
# and every run's wall time, user+system CPU time and peak RSS are taken from wait4. The table
# shows medians of the times, the highest peak RSS of the runs, and `noise`: the larger of the
# two tools' relative interquartile ranges of CPU time. Ratios are kiln/Nix, with their
# geometric means on the last line.
#
#   benches/eval-vs-nix.sh [WORKLOAD...]      # e.g. fib modules
#   RUNS=9 NIXPKGS_LIB=/path/to/nixpkgs.lib benches/eval-vs-nix.sh
#
# Needs: nix-instantiate (Debian's nix-bin), python3, git (only to clone the lib).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$here/../shared/bench}
real=$here/benches/nixpkgs-lib
export RUNS=${RUNS:-5}
kiln=${KILN:-$here/target/release/kiln}
[ -x "$kiln" ] || (cd "$here" && cargo build --release -q)
rev=${NIXPKGS_LIB_REV:-080b7eb536d3baf70796dcc20abe4ee90618ca3c}
lib=${NIXPKGS_LIB:-}
if [ -z "$lib" ]; then
  cached=${XDG_CACHE_HOME:-$HOME/.cache}/kiln-bench/nixpkgs.lib-$rev
  if [ ! -d "$cached/lib" ]; then
    rm -rf "$cached.tmp"
    if git clone -q https://github.com/nix-community/nixpkgs.lib "$cached.tmp" 2>/dev/null &&
      git -C "$cached.tmp" checkout -q "$rev"; then
      mv "$cached.tmp" "$cached"
    else
      rm -rf "$cached.tmp"
    fi
  fi
  [ -d "$cached/lib" ] && lib=$cached
fi
if [ -z "$lib" ]; then
  echo "nixpkgs' lib not found (set NIXPKGS_LIB): the nixpkgs-lib workloads are skipped" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/nixconf" "$work/nixstate"
printf 'build-users-group =\nsandbox = false\nsubstituters =\n' > "$work/nixconf/nix.conf"
export NIX_REMOTE=dummy:// NIX_STORE_DIR=/nix/store NIX_STATE_DIR="$work/nixstate" \
  NIX_CONF_DIR="$work/nixconf" NIX_LOG_DIR="$work/nixstate/log"

exec python3 - "$kiln" "$bench" "$real" "$lib" "$@" <<'PY'
import math, os, statistics, subprocess, sys, time

kiln, bench, real, lib, wanted = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
runs = int(os.environ["RUNS"])

folders = [(bench, [])] + ([(real, ["-I", f"nixpkgs-lib={lib}"])] if lib else [])
workloads = []
for folder, search in folders:
    for entry in sorted(os.listdir(folder)):
        name = entry[:-4]
        if entry.endswith(".nix") and os.path.exists(f"{folder}/expected/{name}.exp"):
            if not wanted or name in wanted:
                workloads.append((name, folder, search))
missing = set(wanted) - {w[0] for w in workloads}
if missing:
    sys.exit(f"no such workload: {', '.join(sorted(missing))}")

def run(argv):
    """Runs argv; returns (wall s, user+system s, peak RSS KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(argv)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss

def spread(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return (q[2] - q[0]) / q[1]

print(f"{'workload':<14} {'kiln_cpu':>9} {'nix_cpu':>9} {'cpu':>6} {'kiln_wall':>9} {'nix_wall':>9}"
      f" {'wall':>6} {'kiln_rss':>9} {'nix_rss':>9} {'noise':>6}   (ms: medians of {runs}; KiB: highest peak)")
cpu_ratios, wall_ratios = [], []
for name, folder, search in workloads:
    path = f"{folder}/{name}.nix"
    k_cmd = [kiln, "eval", "--strict", "--store-dir", "/nix/store", *search, path]
    n_cmd = ["nix-instantiate", "--eval", "--strict", *search, path]
    got = subprocess.run(k_cmd, capture_output=True, text=True)
    expected = open(f"{folder}/expected/{name}.exp").read()
    if (got.stdout + got.stderr).rstrip("\n") != expected.rstrip("\n"):
        sys.exit(f"{name}: kiln printed something else than expected/{name}.exp:\n"
                 + (got.stdout + got.stderr)[:500])
    run(n_cmd)  # warm-up (file cache)
    k, n = [], []
    for _ in range(runs):
        k.append(run(k_cmd))
        n.append(run(n_cmd))
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    kc, nc, kw, nw = med(k, 1), med(n, 1), med(k, 0), med(n, 0)
    kr, nr = max(r[2] for r in k), max(r[2] for r in n)
    noise = max(spread([r[1] for r in k]), spread([r[1] for r in n]))
    cpu_ratios.append(kc / nc)
    wall_ratios.append(kw / nw)
    print(f"{name:<14} {kc*1000:9.0f} {nc*1000:9.0f} {kc/nc:6.3f} {kw*1000:9.0f} {nw*1000:9.0f}"
          f" {kw/nw:6.3f} {kr:9d} {nr:9d} {noise:6.1%}", flush=True)
geo = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
print(f"geometric mean of kiln/Nix: cpu {geo(cpu_ratios):.3f}, wall {geo(wall_ratios):.3f}")
PY
