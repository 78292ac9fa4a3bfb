#!/usr/bin/env bash
# Regenerates the expectations of the language corpus with the oracle, Nix 2.8's
# `nix-instantiate`. Never edit an expectation by hand: change the case and rerun this.
#
# Usage: tests/lang/regen.sh [SUBSTRING]   (only cases whose "group/name" contains SUBSTRING)
#
# The oracle runs isolated: its configuration and state live in a temporary folder, the
# logical store directory is /nix/store and NIX_REMOTE=dummy:// computes store paths without
# writing anything. The absolute corpus directory is replaced by @DIR@ in every expectation.
set -euo pipefail

corpus=$(cd "$(dirname "$0")" && pwd -P)
filter=${1:-}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$scratch/conf"
printf 'build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command\n' \
  >"$scratch/conf/nix.conf"
export NIX_CONF_DIR="$scratch/conf" NIX_STATE_DIR="$scratch/var" NIX_LOG_DIR="$scratch/var/log"
export NIX_STORE_DIR=/nix/store NIX_REMOTE=dummy://
export KILN_CORPUS_VAR="value from the corpus environment"
export KILN_CORPUS_BYTES_VAR=$'\xff\xfe-\xc3\xa9'
unset KILN_CORPUS_UNSET_VAR NIX_PATH

normalise() { CORPUS="$corpus" perl -pe 's/\Q$ENV{CORPUS}\E/\@DIR\@/g'; }

# Runs the oracle on one case; writes <base><suffix>.exp (stdout) on success, or
# <base><suffix>.err (the first `error: ` line of stderr) on failure. Returns the exit code.
run_case() {
  local case=$1 suffix=$2 rc=0
  shift 2
  (cd "$corpus" && nix-instantiate --eval "$@" "$case") \
    >"$scratch/stdout" 2>"$scratch/stderr" || rc=$?
  local base=${case%.nix}
  case $rc in
  0)
    normalise <"$scratch/stdout" >"$base$suffix.exp"
    if [[ -z $suffix ]] && grep -q '^trace: ' "$scratch/stderr"; then
      grep '^trace: ' "$scratch/stderr" | normalise >"$base.trace"
    fi
    ;;
  1)
    if ! grep -m1 '^error: ' "$scratch/stderr" | normalise >"$base$suffix.err"; then
      echo "regen: $case$suffix failed without an 'error: ' line" >&2
      cat "$scratch/stderr" >&2
      return 2
    fi
    ;;
  *)
    echo "regen: $case$suffix: unexpected exit code $rc" >&2
    cat "$scratch/stderr" >&2
    return 2
    ;;
  esac
  return "$rc"
}

count=0
for case in "$corpus"/*/*.nix; do
  rel=${case#"$corpus"/}
  # newer-nix/ holds deliberate departures from 2.8, written from current Nix (see README.md).
  [[ $rel == newer-nix/* ]] && continue
  [[ -n $filter && $rel != *"$filter"* ]] && continue
  base=${case%.nix}
  rm -f "$base".{,json.,lazy.,xml.,lazy-xml.}{exp,err} "$base.trace"
  rc=0
  run_case "$case" "" --strict || rc=$?
  if [[ $rc -eq 0 ]]; then
    mode_rc=0
    run_case "$case" .json --strict --json || mode_rc=$?
    # The printing group is also checked lazily and as XML (see README.md).
    if [[ $rel == printing/* ]]; then
      run_case "$case" .lazy || mode_rc=$((mode_rc > $? ? mode_rc : $?))
      run_case "$case" .xml --strict --xml || mode_rc=$((mode_rc > $? ? mode_rc : $?))
      run_case "$case" .lazy-xml --xml || mode_rc=$((mode_rc > $? ? mode_rc : $?))
    fi
    rc=$mode_rc
  fi
  [[ $rc -le 1 ]] || exit 1
  count=$((count + 1))
done
echo "regen: $count cases regenerated"
