let x = { a = 1; }; inherit (x) a; in a
