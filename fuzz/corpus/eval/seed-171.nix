builtins.attrNames (derivation { name = "o"; system = "s"; builder = "b"; outputs = [ "b" "a" ]; })
