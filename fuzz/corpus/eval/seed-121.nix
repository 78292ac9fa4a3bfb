toString [ (derivation { name = "l"; system = "x86_64-linux"; builder = "/bin/sh"; }) "x" ]
