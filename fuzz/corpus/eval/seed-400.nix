builtins.length (builtins.attrNames (builtins.foldl' (acc: i: acc // { "k${toString i}" = i; }) { } (builtins.genList (i: i) 2000)))
