builtins.deepSeq { a = [ 1 { b = [ (throw "inner") ]; } ]; } null
