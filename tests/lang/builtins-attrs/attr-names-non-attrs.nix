builtins.attrNames "x"
