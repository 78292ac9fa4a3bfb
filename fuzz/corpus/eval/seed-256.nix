[ (builtins.pathExists (toString ./fixtures/hello.txt)) (builtins.pathExists "relative/path") ]
