builtins.deepSeq { a = [ (throw "deep") ]; } "unreachable"
