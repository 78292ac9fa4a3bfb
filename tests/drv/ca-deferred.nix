# Input-addressed derivations above a content-addressed one are deferred, transitively.
let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo a > $out" ]; __contentAddressed = true; };
  b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${a} > $out" ]; };
in
derivation { name = "c"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat ${b} > $out" ]; paths = [ a b ]; }
