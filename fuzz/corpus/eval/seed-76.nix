builtins.length (builtins.foldl' (acc: x: acc ++ [ x ]) [ ] (builtins.genList (i: i) 500))
