derivation { name = "cr"; system = "x"; builder = "b"; args = [ '''' ''a
  b'' (builtins.toXML "c\rd") (builtins.toJSON ''ef'') ]; }
