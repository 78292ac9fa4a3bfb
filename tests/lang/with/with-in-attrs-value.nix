let s = { x = 1; y = 2; }; in { sum = with s; x + y; }
