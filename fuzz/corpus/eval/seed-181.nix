(derivation { name = "o"; system = "s"; builder = "b"; outputs = "out"; }).drvPath
