derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "lib" "doc" ]; }
