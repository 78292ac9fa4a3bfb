map builtins.isFunction [ (x: x) builtins.map (builtins.add 1) { } 1 ]
