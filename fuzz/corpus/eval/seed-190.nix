(derivation { name = "thing.drv"; system = "x86_64-linux"; builder = "/bin/sh"; }).drvPath
