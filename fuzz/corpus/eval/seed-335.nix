let s = { a.b = 1; }; in [ (s ? a) (s ? a.b) (s ? a.c) (s ? x.y) (s ? "a") (1 ? a) ]
