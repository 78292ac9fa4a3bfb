derivation { name = "devfirst"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "dev" "out" ]; }
