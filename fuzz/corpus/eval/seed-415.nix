builtins.toJSON { outPath = "/x"; a = 1; }
