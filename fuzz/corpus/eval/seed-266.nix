({ a, b ? 1, ... } @ args: [ a b (builtins.attrNames args) ]) { a = 0; c = 2; }
