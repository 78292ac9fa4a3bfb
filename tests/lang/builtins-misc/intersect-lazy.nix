builtins.attrNames (builtins.intersectAttrs { a = throw "x"; } { a = throw "y"; b = 2; })
