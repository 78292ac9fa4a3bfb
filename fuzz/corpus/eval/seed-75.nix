builtins.sort (a: b: a < b) [ 5 3 9 1 4 1 ]
