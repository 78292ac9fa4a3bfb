[ (true && false) (true || false) (false && throw "short") (true || throw "short") ]
