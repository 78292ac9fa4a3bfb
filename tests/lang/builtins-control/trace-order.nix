builtins.trace 1 (builtins.trace [ "s" 2 ] (builtins.trace "third" 3))
