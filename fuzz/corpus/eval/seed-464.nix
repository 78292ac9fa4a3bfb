[ (builtins.hasContext "plain") (builtins.hasContext (builtins.toFile "f" "c")) (builtins.hasContext "${derivation { name = "d"; system = "s"; builder = "b"; }}") ]
