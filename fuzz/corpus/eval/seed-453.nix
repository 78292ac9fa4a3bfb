[ (builtins.substring 0 3 "abcdef") (builtins.substring 2 100 "abcdef") (builtins.substring 10 2 "abc") (builtins.substring 1 (-1) "abcdef") (builtins.substring 0 0 "abc") ]
