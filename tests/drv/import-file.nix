derivation { name = "src-file"; system = "x86_64-linux"; builder = "/bin/sh"; src = ./fixtures/hello.txt; }
