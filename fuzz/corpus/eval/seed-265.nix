builtins.attrValues (builtins.readDir ./fixtures)
