let
  lib = derivation { name = "lib"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "doc" ]; };
in
derivation { name = "uses-many"; system = "x86_64-linux"; builder = "/bin/sh"; deps = [ lib.out lib.dev ]; docs = lib.doc; }
