# Nix 2.8 returned `{ drvPath = …; drvPath = …; }`; current Nix refuses the output name.
builtins.derivationStrict { name = "foo"; builder = "/bin/sh"; system = "x86_64-linux"; outputs = [ "out" "drvPath" ]; }
