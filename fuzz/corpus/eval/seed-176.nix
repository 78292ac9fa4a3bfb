let f = builtins.toFile "script.sh" "echo hi"; in (derivation { name = "t"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ f ]; }).outPath
