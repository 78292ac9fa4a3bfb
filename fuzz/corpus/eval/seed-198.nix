(derivation { name = "bad name!"; system = "s"; builder = "b"; }).drvPath
