let d = builtins.toFile "f" "x"; in "prefix-" + d + "-suffix"
