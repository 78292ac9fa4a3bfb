[ (builtins.pathExists ./fixtures/hello.txt) (builtins.pathExists ./fixtures/absent) (builtins.pathExists ./fixtures/tree) (builtins.pathExists "/nonexistent-kiln-corpus-path") ]
