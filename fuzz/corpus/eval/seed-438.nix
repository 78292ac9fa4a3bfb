map builtins.parseDrvName [ "" "-1.0" "name-" "a-1b" "x-y-2" ]
