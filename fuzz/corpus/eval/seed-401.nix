builtins.stringLength (builtins.concatStringsSep "" (builtins.genList (i: "abc") 50000))
