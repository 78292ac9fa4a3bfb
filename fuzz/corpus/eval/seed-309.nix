{ "with space" = 1; "a.b" = 2; "" = 3; }
