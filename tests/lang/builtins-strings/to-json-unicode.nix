builtins.toJSON [ "é" "✓" "\u" ]
