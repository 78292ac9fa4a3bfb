builtins.replaceStrings [ "x" "aa" ] [ 0 0 ] ""
