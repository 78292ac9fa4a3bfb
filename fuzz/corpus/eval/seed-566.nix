builtins.getAttr "b" (builtins.getAttr "a" { a.b = 5; })
