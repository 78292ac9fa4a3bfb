builtins.add "a" "b"
