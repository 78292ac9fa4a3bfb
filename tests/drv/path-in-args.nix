derivation { name = "path-args"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ ./fixtures/builder.sh ./fixtures/tree ]; }
