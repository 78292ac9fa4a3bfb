(derivation { name = "o"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "drv" ]; }).drvPath
