[ (builtins.match "ab" "ab") (builtins.match "a" "ab") (builtins.match "a(b)?(c)?" "ab") ]
