let
  base = derivation { name = "base"; system = "x86_64-linux"; builder = "/bin/sh"; };
  left = derivation { name = "left"; system = "x86_64-linux"; builder = "/bin/sh"; inherit base; };
  right = derivation { name = "right"; system = "x86_64-linux"; builder = "/bin/sh"; inherit base; };
in
derivation { name = "top"; system = "x86_64-linux"; builder = "/bin/sh"; inherit left right; }
