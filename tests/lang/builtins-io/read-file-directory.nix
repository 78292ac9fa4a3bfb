builtins.readFile ./fixtures/tree
