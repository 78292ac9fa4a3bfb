map builtins.splitVersion [ "1.2.3" "2.0pre1" "1.0-beta.2" "" "abc" ]
