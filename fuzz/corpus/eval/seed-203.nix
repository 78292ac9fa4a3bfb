(derivation { name = "n"; builder = "b"; }).drvPath
