map (s: builtins.match "[[:space:]]*([[:upper:]][[:lower:]]+)[[:punct:]]?" s) [ "  Hello!" "hello" "World" ]
