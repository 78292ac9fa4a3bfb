map builtins.isFloat [ 1.0 1 "1.0" ]
