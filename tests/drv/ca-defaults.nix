# No outputHashMode or outputHashAlgo: recursive SHA-256; a placeholder in the arguments.
derivation { name = "ca-defaults"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${builtins.placeholder "out"} > $out" ]; __contentAddressed = true; }
