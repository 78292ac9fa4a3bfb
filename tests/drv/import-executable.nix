derivation { name = "src-exec"; system = "x86_64-linux"; builder = "/bin/sh"; src = ./fixtures/tree/run.sh; }
