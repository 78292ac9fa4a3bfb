builtins.attrNames { ${throw "names are strict"} = 1; }
