let
  lib = derivation { name = "lib"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "doc" ]; };
in
derivation { name = "uses-dev"; system = "x86_64-linux"; builder = "/bin/sh"; headers = "${lib.dev}/include"; }
