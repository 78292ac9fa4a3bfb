(derivation { name = "env"; system = "s"; builder = "b"; f = x: x; }).drvPath
