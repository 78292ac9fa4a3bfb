builtins.sort builtins.lessThan [ "pear" "apple" "Banana" "cherry" ]
