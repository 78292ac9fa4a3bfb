builtins.readFile ./fixtures/absent.txt
