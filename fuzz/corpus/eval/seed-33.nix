[ '''' ''a
  b'' ''
  x
  y'' (builtins.toJSON ''cd'') ]
