builtins.toJSON { p = ./fixtures/hello.txt; l = [ ./fixtures/hello.txt ]; }
