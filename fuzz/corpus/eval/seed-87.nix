builtins.sort (a: b: a < b) (builtins.genList (i: (i * 7919) - (i * 7919 / 100) * 100) 40)
