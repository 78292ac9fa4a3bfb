derivation { name = "path-named"; system = "x86_64-linux"; builder = "/bin/sh"; src = builtins.path { path = ./fixtures/tree; name = "source"; }; }
