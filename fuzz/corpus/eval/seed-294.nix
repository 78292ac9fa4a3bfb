let s = { a = { b = 1; }; }; k = "a"; in [ (s ? ${k}) (s ? ${k}.b) (s.${k}.b or 0) (s.${"z"} or 3) ]
