derivation { name = "src-link"; system = "x86_64-linux"; builder = "/bin/sh"; src = ./fixtures/hello-link; }
