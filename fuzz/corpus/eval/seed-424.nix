builtins.fromJSON "\"\\ud83d\\ude00 \\u00fc\""
