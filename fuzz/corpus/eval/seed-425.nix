builtins.stringLength (builtins.substring 0 2 "éa")
