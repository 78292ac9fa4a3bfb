let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; };
in
derivation { name = "consumer"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${dep} > $out" ]; inherit dep; }
