builtins.sort (a: b: a > b) [ 1 10 2 9 3 ]
