map builtins.isPath [ ./x "./x" /abs (toString ./x) ]
