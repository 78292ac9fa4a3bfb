builtins.foldl' (a: b: throw "no") "init" [ ]
