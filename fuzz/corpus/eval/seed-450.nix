map (p: builtins.compareVersions (builtins.head p) (builtins.elemAt p 1)) [ [ "" "1" ] [ "a" "b" ] [ "1.2.3" "1.2.3" ] [ "10" "9" ] [ "1pre" "1" ] [ "2.0pre" "2.0" ] [ "0.9" "0.10" ] ]
