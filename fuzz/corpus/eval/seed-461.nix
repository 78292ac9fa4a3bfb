let p = builtins.toFile "x" "y"; in builtins.hasContext (builtins.substring 0 3 p)
