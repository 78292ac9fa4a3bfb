builtins.replaceStrings [ "ab" "a" ] [ "X" "Y" ] "aababa"
