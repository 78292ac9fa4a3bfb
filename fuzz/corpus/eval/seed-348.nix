builtins.toJSON (builtins.fromJSON "\"\\b\\f\"")
