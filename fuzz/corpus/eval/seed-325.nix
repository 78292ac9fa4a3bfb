rec { a = { x = b; }; b = 2; }.a.x
