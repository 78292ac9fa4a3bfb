map builtins.fromJSON [ "null" "true" "false" "1" "-0" "\"s\"" "[]" "{}" ]
