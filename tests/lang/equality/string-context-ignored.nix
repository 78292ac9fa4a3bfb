let p = builtins.toFile "x" "y"; in p == builtins.unsafeDiscardStringContext p
