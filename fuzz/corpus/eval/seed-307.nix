{ a = let b = 1; in b + 1; c = rec { d = 1; e = d; }; }
