(derivation { name = "coerce"; system = 1; builder = "/bin/sh"; args = [ 1 true null 2.5 ]; }).drvPath
