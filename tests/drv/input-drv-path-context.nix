let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "bin" ]; };
in
derivation { name = "needs-drv"; system = "x86_64-linux"; builder = "/bin/sh"; drv = dep.drvPath; }
