builtins.attrValues { zeta = 1; alpha = 2; Mid = 3; }
