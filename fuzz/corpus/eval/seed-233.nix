{ "${builtins.toFile "n" "n"}" = 1; }
