[ (builtins.match "^ab$" "ab") (builtins.match "b" "abc") (builtins.match ".*b.*" "abc") ]
