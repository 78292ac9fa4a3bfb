let s = { a = { b = 3; }; f = x: x + 1; }; in [ (s.f s.a.b) (s.a.b * 2) (-s.a.b) ]
