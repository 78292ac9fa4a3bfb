builtins.attrNames (builtins.removeAttrs { a = throw "a"; b = 1; } [ "b" ])
