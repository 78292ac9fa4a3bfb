derivation { name = "ca-flat"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; __contentAddressed = true; outputHashMode = "flat"; outputHashAlgo = "sha1"; }
