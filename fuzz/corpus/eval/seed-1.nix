builtins.head (map (x: if x == 2 then throw "two" else x) [ 1 2 ])
