builtins.head (builtins.sort (a: b: a < b) (builtins.genList (i: (i * 7919) - (i * 7919 / 10007) * 10007) 20000))
