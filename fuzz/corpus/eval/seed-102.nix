map (x: x.n) (builtins.sort (a: b: a.k < b.k) [ { k = 2; n = "a"; } { k = 1; n = "b"; } { k = 2; n = "c"; } { k = 1; n = "d"; } ])
