let a = 2; in rec { a = 1; b = { inherit a; }; c = a; }
