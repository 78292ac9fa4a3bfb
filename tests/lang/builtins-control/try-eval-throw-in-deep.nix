builtins.tryEval (builtins.deepSeq [ (throw "deep throw") ] 1)
