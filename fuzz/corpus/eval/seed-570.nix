builtins.getAttr "k" { k = "v"; }
