builtins.path { path = ./fixtures/tree; name = "filtered"; filter = path: type: baseNameOf path != "skip.txt"; }
