builtins.break [ 1 2 ]
