let
  f = x: x;
  l = [ f ];
  s = { a = f; };
in
[
  ([ builtins.add ] == [ builtins.add ])
  ({ a = builtins.add; } == { a = builtins.add; })
  ([ f ] == [ f ])
  (l == l)
  (s == s)
  ({ a = f; } == { a = f; })
  ([ (x: x) ] == [ (x: x) ])
]
