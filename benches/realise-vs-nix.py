#!/usr/bin/env python3
"""Times `kiln realise` against `nix-build` (Nix 2.8, sandbox off, an isolated store in a
temporary folder) on the same derivations, side by side in one run:

  * the no-op realise of examples/busybox (everything already valid), median of 20;
  * one trivial build per invocation (evaluate, build in the sandbox, register), median of N.

    benches/realise-vs-nix.py [N]          # N trivial builds per tool, default 200

Needs busybox-static, nix-bin, user namespaces. KILN overrides the kiln binary
(default target/release/kiln, built if missing).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILN = os.environ.get("KILN", os.path.join(HERE, "target/release/kiln"))
EXAMPLE = os.path.join(HERE, "examples/busybox")
TRIVIAL = r"""{ i }:
let
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path { name = "busybox"; path = binDir; filter = path: type: baseNameOf path == "busybox"; };
in derivation {
  name = "trivial-${toString i}";
  system = builtins.currentSystem;
  builder = "${busybox}/busybox";
  args = [ "sh" "-c" "echo ${toString i} > $out" ];
}
"""


def timed(cmd, env=None):
    start = time.perf_counter()
    run = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr.decode()[-800:]}")
    return elapsed


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    if not os.path.exists(KILN):
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=HERE, check=True)
    work = tempfile.mkdtemp(prefix="kiln-realise-bench-")
    conf = os.path.join(work, "nixconf")
    os.makedirs(conf)
    with open(os.path.join(conf, "nix.conf"), "w") as f:
        f.write("build-users-group =\nsandbox = false\nsubstituters =\n")
    nix_env = dict(os.environ, NIX_STORE_DIR=os.path.join(work, "nix/store"),
                   NIX_STATE_DIR=os.path.join(work, "nix/var"),
                   NIX_LOG_DIR=os.path.join(work, "nix/var/log"), NIX_CONF_DIR=conf, NIX_REMOTE="")
    trivial = os.path.join(work, "trivial.nix")
    with open(trivial, "w") as f:
        f.write(TRIVIAL)
    kiln = [KILN, "--store", os.path.join(work, "kiln")]

    timed(kiln + ["realise", "--no-out-link", EXAMPLE])
    timed(["nix-build", "--no-out-link", EXAMPLE], nix_env)
    noop_kiln = statistics.median(timed(kiln + ["realise", "--no-out-link", EXAMPLE]) for _ in range(20))
    noop_nix = statistics.median(timed(["nix-build", "--no-out-link", EXAMPLE], nix_env) for _ in range(20))
    print(f"no-op realise of examples/busybox, median of 20: kiln {noop_kiln * 1000:.1f} ms, "
          f"nix-build {noop_nix * 1000:.1f} ms, ratio {noop_kiln / noop_nix:.2f}")

    base = int(time.time()) % 100000 * 1000
    built_kiln, built_nix = [], []
    for i in range(count):
        arg = ["--arg", "i", str(base + i)]
        built_kiln.append(timed(kiln + ["realise", "--no-out-link", trivial] + arg))
        built_nix.append(timed(["nix-build", "--no-out-link", trivial] + arg, nix_env))
    k, n = statistics.median(built_kiln), statistics.median(built_nix)
    print(f"one trivial build per invocation, median of {count}: kiln {k * 1000:.1f} ms, "
          f"nix-build {n * 1000:.1f} ms, ratio {k / n:.2f}")
    subprocess.run(["chmod", "-R", "u+w", work])
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
