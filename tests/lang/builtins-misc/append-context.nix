let p = builtins.toFile "ac" "x"; s = builtins.unsafeDiscardStringContext p; in builtins.getContext (builtins.appendContext s (builtins.getContext p))
