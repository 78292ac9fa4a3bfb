(derivation { name = "st"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; n = 1; l = [ 1 2 ]; }).drvPath
