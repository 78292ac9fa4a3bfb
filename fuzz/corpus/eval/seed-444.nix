builtins.getContext (builtins.replaceStrings [ "a" ] [ "${builtins.toFile "r" "r"}" ] "a-a")
