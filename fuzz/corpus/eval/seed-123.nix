builtins.toJSON [ 1.0e15 0.0001 123456.7 (1.0 / 3) ]
