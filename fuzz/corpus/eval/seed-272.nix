({ a, ... }@args: builtins.attrNames args) { a = 1; c = 2; }
