# Once a function has been called, Nix's thunk holding it is evaluated.
let
  f = x: x;
  r = builtins.seq (f 1) { inherit f; g = x: x; };
in
r
