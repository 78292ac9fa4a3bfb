#!/usr/bin/env bash
# Regenerates the derivation goldens with the oracle, Nix 2.8's `nix-instantiate`, for the
# logical store directories /nix/store and /kiln/store, with the ca-derivations feature on
# (kiln always accepts __contentAddressed). Never edit a golden by hand.
#
# Usage: tests/drv/regen.sh [SUBSTRING]   (only cases whose name contains SUBSTRING)
#
# Each case and store directory gets a fresh, temporary chroot store
# (NIX_REMOTE=local?root=…), so the oracle really writes its .drv files and sources there and
# nothing under /nix is touched. Results, under golden/<nix-store|kiln-store>/:
#   <case>.drv-paths      stdout of nix-instantiate (the printed .drv paths)
#   <case>/<name>.drv     every .drv file the oracle wrote (the closure of the printed ones)
#   <case>.store-objects  base names of every other store object it wrote (sources, toFile)
set -euo pipefail

corpus=$(cd "$(dirname "$0")" && pwd -P)
filter=${1:-}
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null || true; rm -rf "$scratch"' EXIT

mkdir -p "$scratch/conf"
printf 'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command ca-derivations\n' \
  >"$scratch/conf/nix.conf"
export NIX_CONF_DIR="$scratch/conf" NIX_STATE_DIR="$scratch/var" NIX_LOG_DIR="$scratch/var/log"
unset NIX_PATH

count=0
for case in "$corpus"/*.nix; do
  name=$(basename "$case" .nix)
  [[ -n $filter && $name != *"$filter"* ]] && continue
  attr_args=()
  if [[ -f $corpus/$name.attr ]]; then
    attr_args=(-A "$(cat "$corpus/$name.attr")")
  fi
  for store_dir in /nix/store /kiln/store; do
    key=$(echo "${store_dir#/}" | tr / -)
    golden=$corpus/golden/$key
    root=$scratch/root-$key-$name
    mkdir -p "$golden"
    rm -rf "${golden:?}/$name" "$golden/$name.drv-paths" "$golden/$name.store-objects"
    if ! (cd "$corpus" && NIX_STORE_DIR=$store_dir NIX_REMOTE="local?root=$root" \
      nix-instantiate "${attr_args[@]}" "$case") >"$scratch/stdout" 2>"$scratch/stderr"; then
      echo "regen: $name ($store_dir) failed:" >&2
      cat "$scratch/stderr" >&2
      exit 1
    fi
    cp "$scratch/stdout" "$golden/$name.drv-paths"
    mkdir -p "$golden/$name"
    # The physical store is the folder holding the first printed .drv.
    first=$(head -n1 "$scratch/stdout")
    first=${first%%!*}
    store=$(dirname "$(find "$root" -name "$(basename "$first")" -not -path '*/var/*' | head -n1)")
    find "$store" -mindepth 1 -maxdepth 1 -name '*.drv' -exec cp {} "$golden/$name/" \;
    find "$store" -mindepth 1 -maxdepth 1 ! -name '*.drv' ! -name '.links' -printf '%f\n' |
      LC_ALL=C sort >"$golden/$name.store-objects"
  done
  count=$((count + 1))
done
echo "regen: $count derivation cases regenerated"
