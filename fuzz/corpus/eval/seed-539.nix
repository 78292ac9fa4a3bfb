let s = { a = 1; b = 2; c = 3; }; in let inherit (s) a c; in [ a c ]
