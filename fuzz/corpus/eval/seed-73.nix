builtins.genList (i: i) 0
