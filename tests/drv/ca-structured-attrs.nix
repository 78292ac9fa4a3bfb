# `__contentAddressed` with `__structuredAttrs`: not in the JSON; the output's placeholder is.
let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; __contentAddressed = true; __structuredAttrs = true; outputs = [ "out" "bin" ]; x = { y = builtins.placeholder "bin"; }; };
in
derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; deps = [ a a.bin ]; __contentAddressed = true; outputHashMode = "flat"; outputHashAlgo = "sha512"; }
