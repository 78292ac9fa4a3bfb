builtins.attrNames (builtins.mapAttrs (n: v: v) { c = 1; a = 2; b = 3; })
