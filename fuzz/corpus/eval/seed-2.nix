let s = { a = 1; b = throw "b"; }; in s.a
