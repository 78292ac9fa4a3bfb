let b = { x = 1; }; in { inherit b; b.y = 2; }
