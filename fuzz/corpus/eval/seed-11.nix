let x = { a = x; b = 1; }; in builtins.deepSeq x "terminated"
