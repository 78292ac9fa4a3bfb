map builtins.isBool [ true false 0 null ]
