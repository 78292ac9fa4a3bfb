builtins.fromJSON "\"\\u00e9 \\n \\\" \\/\""
