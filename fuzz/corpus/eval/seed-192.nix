(derivation { name = "o"; system = "s"; builder = "b"; outputs = [ "out" "out" ]; }).drvPath
