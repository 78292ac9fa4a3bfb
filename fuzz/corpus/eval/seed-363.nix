{ "if" = 1; "let" = 2; "a'" = 3; "rec" = 4; "or" = 5; "with space" = 6; "x.y" = 7; }
