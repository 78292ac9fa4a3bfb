builtins.getContext (builtins.toFile "ctx" "content")
