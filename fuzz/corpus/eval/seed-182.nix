let
  drv = derivation { name = "x"; builder = "/bin/sh"; system = "x86_64-linux"; };
in
builtins.toXML { inherit drv; again = drv; list = [ drv ]; fn = { a, b ? 1, ... }@args: a; plain = x: x; }
