derivation { name = "hello-world-2.12.1-unstable-2024"; system = "x86_64-linux"; builder = "/bin/sh"; }
