# toXML writes a string's bytes, escaping only XML's special characters.
builtins.toXML (builtins.readFile ./fixtures/binary.dat)
