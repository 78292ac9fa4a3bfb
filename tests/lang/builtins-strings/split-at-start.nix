builtins.split "(a)" "abca"
