builtins.foldl' (acc: x: x) 0 [ (throw "first") 2 ]
