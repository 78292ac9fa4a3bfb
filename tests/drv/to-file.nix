derivation { name = "script-user"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ (builtins.toFile "script.sh" "echo hi > $out\n") ]; }
