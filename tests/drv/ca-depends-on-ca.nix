let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo a > $out" ]; __contentAddressed = true; };
in
derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${a} > $out" ]; inherit a; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; }
