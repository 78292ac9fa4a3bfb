let p = builtins.toFile "x" "y"; in builtins.hasContext (builtins.unsafeDiscardStringContext p)
