# Negative zero from JSON: toJSON writes it "-0", which reads back as the integer 0, and
# one more round changes nothing (the fuzz target from_json checks this settles).
let z = builtins.fromJSON "-0.0"; in
[ z (builtins.toJSON z) (builtins.fromJSON (builtins.toJSON z)) (builtins.toJSON (builtins.fromJSON (builtins.toJSON z))) ]
