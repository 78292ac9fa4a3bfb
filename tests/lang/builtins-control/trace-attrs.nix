builtins.trace { a = 1; } "done"
