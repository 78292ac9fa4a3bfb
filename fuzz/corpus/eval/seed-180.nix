(derivation { name = "env"; system = "x86_64-linux"; builder = "/bin/sh"; i = 1; f = 1.5; t = true; fl = false; n = null; l = [ 1 "a" [ "b" ] ]; p = ./fixtures/hello.txt; }).drvPath
