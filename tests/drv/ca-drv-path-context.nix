# A `.drv` path in the context (all outputs of the closure) of a deferred derivation.
let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; __contentAddressed = true; outputs = [ "out" "lib" ]; };
  b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; inherit a; };
in
derivation { name = "whole"; system = "x86_64-linux"; builder = "/bin/sh"; d = b.drvPath; __structuredAttrs = true; x = { inherit b; }; }
