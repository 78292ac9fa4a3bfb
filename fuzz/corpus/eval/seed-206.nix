# Positions of a derivation's input attributes are the caller's (Nix keeps them through //).
let
  drv = derivation {
    name = "x";
    builder = "/bin/sh";
    system = "x86_64-linux";
    outputs = [ "out" "dev" ];
  };
in
[ (builtins.unsafeGetAttrPos "name" drv) (builtins.unsafeGetAttrPos "system" drv.dev) ]
