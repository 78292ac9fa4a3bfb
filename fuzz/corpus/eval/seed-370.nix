let inner = { x = 1; }; outer = { a = inner; b = inner; }; in { o = outer; p = outer; q = inner; }
