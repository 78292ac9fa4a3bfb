let
  lib = derivation { name = "lib"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "doc" ]; };
in
derivation { name = "all-outputs"; system = "x86_64-linux"; builder = "/bin/sh"; outs = map (o: o.outPath) lib.all; }
