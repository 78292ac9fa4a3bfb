builtins.split "x*" "ab"
