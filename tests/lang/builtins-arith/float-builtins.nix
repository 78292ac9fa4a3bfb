[ (builtins.add 1 0.5) (builtins.mul 2.0 3) (builtins.div 1 4.0) (builtins.sub 0.5 1) ]
