map builtins.isInt [ 1 (-1) 1.0 "1" ]
