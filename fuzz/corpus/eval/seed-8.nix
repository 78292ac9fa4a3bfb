builtins.attrNames { a = throw "lazy"; b = 1; }
