builtins.hasContext (builtins.concatStringsSep "/" [ "x" (builtins.toFile "c" "c") ])
