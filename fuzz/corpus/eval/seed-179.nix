(builtins.derivation { name = "alias"; system = "x86_64-linux"; builder = "/bin/sh"; }).drvPath == (derivation { name = "alias"; system = "x86_64-linux"; builder = "/bin/sh"; }).drvPath
