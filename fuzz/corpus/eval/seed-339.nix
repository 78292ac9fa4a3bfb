{ a.b = rec { c = 1; d = c + 1; }; }
