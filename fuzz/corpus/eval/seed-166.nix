map builtins.typeOf [ ("a" + "b") (./x + "y") ("y" + toString ./x) ]
