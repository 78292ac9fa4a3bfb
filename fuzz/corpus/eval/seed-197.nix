let d = derivation { name = "d"; system = "s"; builder = "b"; }; in builtins.toFile "f" "${d}"
