builtins.mapAttrs (n: v: builtins.mapAttrs (m: w: n + m + toString w) v) { x = { a = 1; }; y = { b = 2; }; }
