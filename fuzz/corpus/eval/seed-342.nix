builtins.floor 1.0e300
