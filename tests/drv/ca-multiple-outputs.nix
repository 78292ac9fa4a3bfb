let
  lib = derivation { name = "lib"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "doc" ]; __contentAddressed = true; };
in
[
  (derivation { name = "uses-dev"; system = "x86_64-linux"; builder = "/bin/sh"; dev = lib.dev; doc = "${lib.doc}/share"; })
  (derivation { name = "uses-all"; system = "x86_64-linux"; builder = "/bin/sh"; outs = map (o: o.outPath) lib.all; __contentAddressed = true; })
]
