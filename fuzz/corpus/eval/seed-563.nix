builtins.getAttr "nope" { k = "v"; }
