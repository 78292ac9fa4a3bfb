builtins.addErrorContext "while doing something" (1 + 1)
