let s = { "a b" = 1; "x.y" = 2; }; in [ s."a b" s."x.y" s.${"a b"} ]
