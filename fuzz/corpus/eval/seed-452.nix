builtins.hasContext (builtins.replaceStrings [ "x" ] [ "y" ] (builtins.toFile "rc" "x"))
