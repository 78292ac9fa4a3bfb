builtins.attrNames { "b" = 1; "a" = 2; "A" = 3; "é" = 4; "z" = 5; "_" = 6; "0" = 7; }
