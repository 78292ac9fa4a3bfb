let src = { p = 1; q = 2; }; in { inherit (src) p q; }
