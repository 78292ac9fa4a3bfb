let s = { a = 1; }; in [ (s ? a && true) (!(s ? b)) ((s // { b = 1; }) ? b) ]
