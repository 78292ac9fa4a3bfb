(builtins.tryEval <kiln-corpus-absent-entry>).success
