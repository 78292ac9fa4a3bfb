let builtins = { length = _: "shadowed"; }; in builtins.length [ 1 2 ]
