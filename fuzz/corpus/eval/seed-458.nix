builtins.toJSON { s = "quote\" backslash\\ newline\n tab\t"; i = -3; f = 1.5; b = true; n = null; l = [ 1 [ 2 ] ]; a = { nested = { }; }; }
