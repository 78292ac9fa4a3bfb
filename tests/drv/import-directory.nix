derivation { name = "src-dir"; system = "x86_64-linux"; builder = "/bin/sh"; src = ./fixtures/tree; }
