builtins.toXML { a = "x\ry"; b = [ "c\rd" ]; }
